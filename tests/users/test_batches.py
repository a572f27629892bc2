"""Users → CRM in batches: HubSpot's batch endpoints through the simulator, per-user outcomes,
no wasted calls, and ``POST /users/batch``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig
from switchboard.sandbox import Sandbox, zero_config
from tests.support import eventually
from tests.users.test_users import contact_by_email, synced


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(only=["hubspot", "acme"]) as box:
        assert box.acme is not None
        box.acme.rate_limit = 10_000  # the real 10/min would make tests wait minutes
        yield box


@pytest.fixture
def crm() -> str:
    return "hubspot"


@pytest.fixture
def hub_config(
    sandbox: Sandbox, create_missing: bool, users_concurrency: int, crm: str
) -> HubConfig:
    data = zero_config(sandbox.urls)
    data["users"]["create_missing"] = create_missing
    data["users"]["concurrency"] = users_concurrency
    data["users"]["crm_connection"] = crm
    if "acme" in data["connections"]:
        data["connections"]["acme"].pop("rate_limit", None)
    return HubConfig.model_validate(data)


def requests(hubspot: httpx.Client) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = hubspot.get("/_sandbox/requests").json()["requests"]
    return [r for r in log if r["path"].startswith("/crm/")]


def seed(hubspot: httpx.Client, emails: list[str]) -> dict[str, str]:
    """Contacts that exist in HubSpot before the hub writes them: email → id."""
    ids = {}
    for email in emails:
        r = hubspot.post("/_sandbox/hubspot/contacts", json={"properties": {"email": email}})
        ids[email] = r.json()["id"]
    hubspot.delete("/_sandbox/requests")
    return ids


async def post_batch(client: httpx.AsyncClient, items: list[Any], **params: Any) -> httpx.Response:
    return await client.post("/users/batch", json={"items": items}, params=params)


async def all_settled(client: httpx.AsyncClient, count: int, timeout: float = 30) -> None:
    async def done() -> bool:
        items = (await client.get("/users", params={"limit": 500})).json()["items"]
        return len(items) == count and all(
            u["sync"]["state"] in ("synced", "failed", "dead") for u in items
        )

    await eventually(done, timeout=timeout)


async def users_by_state(client: httpx.AsyncClient) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for u in (await client.get("/users", params={"limit": 500})).json()["items"]:
        out.setdefault(u["sync"]["state"], []).append(u)
    return out


async def test_one_bad_email_among_100_fails_alone_with_the_crm_message(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    items = [{"id": f"p{i:03}", "email": f"p{i}@example.com", "firstName": "P"} for i in range(99)]
    # A syntactically valid address whose top-level domain HubSpot does not accept.
    items.insert(42, {"id": "bad", "email": "bad@example.c0m", "firstName": "B"})
    r = await post_batch(client, items)
    assert r.status_code == 200 and r.json()["errors"] == []
    await all_settled(client, 100)
    states = await users_by_state(client)
    assert len(states["synced"]) == 99
    [failed] = states["failed"]
    assert failed["id"] == "bad"
    assert "Email address bad@example.c0m is invalid" in failed["sync"]["lastError"]
    batches = [r for r in requests(hubspot) if r["path"].endswith("/batch/upsert")]
    assert len(batches) <= 4  # a few batch requests (the worker's batches), not 100 calls
    assert contact_by_email(hubspot, "p7@example.com") is not None


async def test_429_on_a_batch_retries_it_after_retry_after_then_succeeds(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    hubspot.put("/_sandbox/faults", json={"storm": True, "storm_retry_after": 1})
    r = await post_batch(client, [{"id": f"r{i}", "email": f"r{i}@example.com"} for i in range(30)])
    assert r.status_code == 200

    async def throttled() -> bool:
        return any(x["status"] == 429 for x in requests(hubspot))

    await eventually(throttled)
    assert all(u["sync"]["state"] == "pending" for u in (await users_by_state(client))["pending"])
    hubspot.delete("/_sandbox/faults")
    await all_settled(client, 30)
    states = await users_by_state(client)
    assert len(states["synced"]) == 30
    assert all(u["sync"]["attempts"] >= 2 for u in states["synced"])
    # The users' own requests (the connection's scheduled sync may list or search meanwhile).
    ok = [x for x in requests(hubspot) if x["status"] == 200 and "/batch/" in x["path"]]
    assert len(ok) == 1  # they came due together and went out together


async def metric(client: httpx.AsyncClient, name: str) -> float:
    """The sum of a metric's samples (all labels) at ``/metrics``."""
    text = (await client.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


async def test_more_than_100_ready_jobs_split_into_requests_of_at_most_100(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    calls_before = await metric(client, "switchboard_users_crm_calls_total")
    changes_before = await metric(client, "switchboard_users_propagated_total")
    fills_before = await metric(client, "switchboard_job_batch_fill_ratio_count")
    r = await post_batch(
        client, [{"id": f"s{i:03}", "email": f"s{i}@example.com"} for i in range(250)]
    )
    assert r.status_code == 200 and len(r.json()["items"]) == 250
    await all_settled(client, 250)
    assert len((await users_by_state(client))["synced"]) == 250
    calls = requests(hubspot)
    assert all(c["path"].endswith("/batch/upsert") for c in calls)
    assert all(c["inputs"] <= 100 for c in calls) and sum(c["inputs"] for c in calls) == 250
    assert 3 <= len(calls) <= 6  # ceil(250 / 100) at best; never one call per user
    # Visible: provider calls per propagated change, and how full the batches were.
    calls_made = await metric(client, "switchboard_users_crm_calls_total") - calls_before
    changes = await metric(client, "switchboard_users_propagated_total") - changes_before
    assert changes == 250 and calls_made == len(calls)
    assert await metric(client, "switchboard_job_batch_fill_ratio_count") > fills_before


@pytest.mark.parametrize("create_missing", [False])
async def test_create_missing_off_reads_then_updates_and_never_creates(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    ids = seed(hubspot, [f"e{i}@example.com" for i in range(5)])
    before = hubspot.get("/_sandbox/hubspot/state").json()["contacts"]
    items = [{"id": f"e{i}", "email": f"e{i}@example.com", "lastName": "E"} for i in range(5)]
    items += [{"id": f"n{i}", "email": f"n{i}@example.com", "lastName": "N"} for i in range(5)]
    await post_batch(client, items)
    await all_settled(client, 10)
    states = await users_by_state(client)
    assert sorted(u["id"] for u in states["synced"]) == [f"e{i}" for i in range(5)]
    assert sorted(u["id"] for u in states["failed"]) == [f"n{i}" for i in range(5)]
    assert all("create_missing is off" in u["sync"]["lastError"] for u in states["failed"])
    assert {u["sync"]["crmContactId"] for u in states["synced"]} == set(ids.values())
    assert hubspot.get("/_sandbox/hubspot/state").json()["contacts"] == before
    paths = {c["path"].rsplit("/", 1)[-1] for c in requests(hubspot)}
    assert paths <= {"read", "update"}
    assert contact_by_email(hubspot, "n0@example.com") is None


async def test_a_cleared_field_reaches_the_crm_and_only_changes_are_sent(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    await client.patch(
        "/users/c1", json={"email": "c1@example.com", "firstName": "C", "lastName": "L"}
    )
    await synced(client, "c1")
    contact = contact_by_email(hubspot, "c1@example.com")
    assert contact is not None and contact["properties"]["lastname"] == "L"
    hubspot.delete("/_sandbox/requests")
    await client.patch("/users/c1", json={"email": "c1@example.com", "lastName": None})
    await synced(client, "c1")
    contact = contact_by_email(hubspot, "c1@example.com")
    assert contact is not None
    assert contact["properties"]["lastname"] is None and contact["properties"]["firstname"] == "C"
    [update] = [r for r in requests(hubspot) if r["path"].endswith("/batch/update")]
    assert update["inputs"] == 1


async def test_two_changes_to_one_user_never_reorder(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    hubspot.put("/_sandbox/faults", json={"latency_ms": 300})
    await client.patch("/users/o1", json={"email": "o1@example.com", "firstName": "first"})

    async def running() -> bool:
        items = (await client.get("/admin/jobs", params={"state": "running"})).json()["items"]
        return bool(items)

    await eventually(running)
    await client.patch("/users/o1", json={"email": "o1@example.com", "firstName": "second"})
    hubspot.delete("/_sandbox/faults")
    done = await synced(client, "o1")
    assert done["firstName"] == "second"
    contact = contact_by_email(hubspot, "o1@example.com")
    assert contact is not None and contact["properties"]["firstname"] == "second"
    # The second change waited for the first: two requests, one after the other.
    calls = [r for r in requests(hubspot) if "/batch/" in r["path"]]
    assert len(calls) == 2 and calls[0]["at"] + calls[0]["duration_ms"] / 1000 <= calls[1]["at"]


async def test_a_webhook_echo_of_our_own_write_makes_no_call(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    hubspot: httpx.Client,
    hub_url: str,
) -> None:
    assert sandbox.hubspot is not None
    sandbox.hubspot.webhooks.configure(url=hub_url + "/webhooks/hubspot")
    await post_batch(
        client, [{"id": f"w{i}", "email": f"w{i}@example.com", "firstName": "W"} for i in range(5)]
    )
    await all_settled(client, 5)

    def webhooks() -> dict[str, int]:
        stats: dict[str, int] = hubspot.get("/_sandbox/hubspot/state").json()["webhooks"]
        return stats

    seen = 0

    async def delivered() -> bool:
        stats = webhooks()
        return stats["delivered"] > seen and stats["queued"] == 0 and stats["in_flight"] == 0

    async def refreshes_done() -> bool:
        jobs = (await client.get("/admin/jobs", params={"kind": "contacts.refresh"})).json()
        return all(j["state"] == "succeeded" for j in jobs["items"])

    await eventually(delivered)
    await eventually(refreshes_done)
    seen = webhooks()["delivered"]
    # A later change of one of them: its echo too (the creation echoes were handled first, so
    # none of them reports a value the hub has since overwritten: that one would be read back).
    await client.patch("/users/w0", json={"email": "w0@example.com", "firstName": "V"})
    await synced(client, "w0")
    await eventually(delivered)
    await eventually(refreshes_done)
    # Every event was an echo: recognised on arrival, or by its job once the write's record
    # committed; either way HubSpot was not asked to read anything back.
    assert all("/batch/read" not in r["path"] and r["method"] != "GET" for r in requests(hubspot))
    # A change made in HubSpot itself is not an echo: it is read back.
    contact = contact_by_email(hubspot, "w1@example.com")
    assert contact is not None
    hubspot.patch(
        f"/_sandbox/hubspot/contacts/{contact['id']}", json={"properties": {"firstname": "UI"}}
    )

    async def read_back() -> bool:
        return any(r["path"].endswith("/batch/read") for r in requests(hubspot))

    await eventually(read_back)


async def test_post_users_batch_validates_each_item(client: httpx.AsyncClient) -> None:
    items: list[Any] = [
        {"id": "b1", "email": "b1@example.com", "firstName": "B"},
        {"id": "b2", "email": "not-an-email"},
        "not an object",
        {"id": "", "email": "b4@example.com"},
        {"id": "b5", "email": "b5@example.com", "nickname": "x"},
        {"id": "b6", "email": "b6@example.com", "lastName": None},
    ]
    atomic = await post_batch(client, items, atomic="true")
    assert atomic.status_code == 422
    assert [e["index"] for e in atomic.json()["errors"]] == [1, 2, 3, 4]
    assert (await client.get("/users/b1")).status_code == 404  # nothing saved
    r = await post_batch(client, items)
    assert r.status_code == 200
    body = r.json()
    assert [u["id"] for u in body["items"]] == ["b1", "b6"]
    errors = {e["index"]: e for e in body["errors"]}
    assert sorted(errors) == [1, 2, 3, 4]
    assert errors[1]["id"] == "b2" and errors[1]["detail"][0]["loc"] == ["email"]
    assert errors[4]["detail"][0]["loc"] == ["nickname"]
    assert (await client.get("/users/b1")).json()["firstName"] == "B"
    too_many = await post_batch(
        client, [{"id": f"x{i}", "email": "x@example.com"} for i in range(1001)]
    )
    assert too_many.status_code == 422 and "detail" in too_many.json()
    not_a_list = await client.post("/users/batch", json={"items": {"id": "x"}})
    assert not_a_list.status_code == 422


@pytest.mark.parametrize("crm", ["acme"])
async def test_the_mapped_crm_gets_one_call_per_user_a_few_at_once(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    assert sandbox.acme is not None
    r = await post_batch(
        client, [{"id": f"a{i}", "email": f"a{i}@example.com", "lastName": "A"} for i in range(12)]
    )
    assert r.status_code == 200
    await all_settled(client, 12)
    assert len((await users_by_state(client))["synced"]) == 12
    with httpx.Client(base_url=sandbox.urls["acme"], timeout=10) as acme:
        log = acme.get("/_sandbox/requests").json()["requests"]
    creates = [x for x in log if x["method"] == "POST" and x["path"].endswith("/contacts")]
    assert len(creates) == 12
