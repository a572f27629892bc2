"""Users → CRM propagation, end to end against the HubSpot simulator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support import eventually

TOKEN = {"Authorization": "Bearer pat-sandbox"}


def contact_by_email(hubspot: httpx.Client, email: str) -> dict[str, Any] | None:
    r = hubspot.get(
        f"/crm/v3/objects/contacts/{email}",
        params={"idProperty": "email", "properties": "email,firstname,lastname"},
        headers=TOKEN,
    )
    return r.json() if r.status_code == 200 else None


def writes(hubspot: httpx.Client) -> list[dict[str, Any]]:
    """Contact writes the simulator answered (faulted requests included)."""
    log = hubspot.get("/_sandbox/requests").json()["requests"]
    return [
        r
        for r in log
        if r["method"] in ("POST", "PATCH")
        and "/crm/v3/objects/contacts" in r["path"]
        and not r["path"].endswith(("/batch/read", "/search"))
    ]


async def user(client: httpx.AsyncClient, user_id: str) -> dict[str, Any]:
    r = await client.get(f"/users/{user_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def synced(client: httpx.AsyncClient, user_id: str, timeout: float = 20) -> dict[str, Any]:
    async def done() -> bool:
        return (await user(client, user_id))["sync"]["state"] == "synced"

    await eventually(done, timeout=timeout)
    return await user(client, user_id)


async def test_patch_answers_at_once_and_the_crm_follows(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    r = await client.patch("/users/u1", json={"email": "ada@example.com", "firstName": "Ada"})
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "u1" and body["email"] == "ada@example.com" and body["firstName"] == "Ada"
    assert body["lastName"] is None and body["sync"]["state"] in ("pending", "synced")
    done = await synced(client, "u1")
    contact = contact_by_email(hubspot, "ada@example.com")
    assert contact is not None and done["sync"]["crmContactId"] == contact["id"]
    assert contact["properties"]["firstname"] == "Ada"
    assert contact["properties"]["lastname"] is None  # only the fields the user has are sent
    assert done["sync"]["lastError"] is None and done["sync"]["syncedAt"] is not None


async def test_concurrent_patches_each_answer_with_their_own_change(
    client: httpx.AsyncClient,
) -> None:
    """Concurrent PATCHes share a transaction; each still answers with the user as its own
    change left it, and the last one applied is what the user holds."""
    names = [f"n{i}" for i in range(20)]
    answers = await asyncio.gather(
        *(
            client.patch("/users/same", json={"email": "same@example.com", "firstName": name})
            for name in names
        )
    )
    assert [a.json()["firstName"] for a in answers] == names
    final = (await client.get("/users/same")).json()
    assert final["firstName"] in names and final["email"] == "same@example.com"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "email"]),
        ({"email": "not-an-email"}, ["body", "email"]),
        ({"email": "a@example.com", "firstName": 3}, ["body", "firstName"]),
        ({"email": "a@example.com", "nickname": "x"}, ["body", "nickname"]),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], loc: list[str]
) -> None:
    r = await client.patch("/users/u1", json=body)
    assert r.status_code == 422
    assert loc in [e["loc"] for e in r.json()["detail"]]
    assert (await client.get("/users/u1")).status_code == 404


async def test_an_existing_contact_is_found_by_email_and_an_email_change_updates_it(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    existing = hubspot.post(
        "/_sandbox/hubspot/contacts", json={"properties": {"email": "old@example.com"}}
    ).json()
    await client.patch("/users/u2", json={"email": "old@example.com", "lastName": "Lovelace"})
    first = await synced(client, "u2")
    assert first["sync"]["crmContactId"] == existing["id"]
    await client.patch("/users/u2", json={"email": "new@example.com"})
    second = await synced(client, "u2")
    assert second["sync"]["crmContactId"] == existing["id"]
    contact = contact_by_email(hubspot, "new@example.com")
    assert contact is not None and contact["id"] == existing["id"]
    assert contact["properties"]["lastname"] == "Lovelace"
    assert contact_by_email(hubspot, "old@example.com") is None
    assert [w["path"].rsplit("/", 1)[-1] for w in writes(hubspot)] == ["upsert", "update"]


async def test_a_cleared_field_is_cleared_in_the_crm(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    await client.patch(
        "/users/u5", json={"email": "clear@example.com", "firstName": "Ada", "lastName": "L"}
    )
    await synced(client, "u5")
    r = await client.patch("/users/u5", json={"email": "clear@example.com", "lastName": None})
    assert r.status_code == 200 and r.json()["lastName"] is None
    await synced(client, "u5")
    contact = contact_by_email(hubspot, "clear@example.com")
    assert contact is not None
    assert contact["properties"]["lastname"] in ("", None)
    assert contact["properties"]["firstname"] == "Ada"
    # One write to create the contact, one to clear the field (batch endpoints: both POSTs).
    assert [w["path"].rsplit("/", 1)[-1] for w in writes(hubspot)] == ["upsert", "update"]


async def test_no_call_when_nothing_changed(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    await client.patch("/users/u3", json={"email": "same@example.com", "firstName": "S"})
    await synced(client, "u3")

    def contact_calls() -> int:
        # Not the connection's own sync (a listing), which the runtime starts at once.
        log = hubspot.get("/_sandbox/requests").json()["requests"]
        return sum((r["method"], r["path"]) != ("GET", "/crm/v3/objects/contacts") for r in log)

    calls = contact_calls()
    r = await client.patch("/users/u3", json={"email": "same@example.com", "firstName": "S"})
    assert r.json()["sync"]["state"] == "synced"
    jobs = (await client.get("/admin/jobs", params={"kind": "users.propagate"})).json()["items"]
    assert len(jobs) == 1  # the unchanged PATCH queued nothing
    await asyncio.sleep(0.2)
    assert contact_calls() == calls


async def test_outage_then_recovery_sends_one_call_with_the_newest_values(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    hubspot.put("/_sandbox/faults", json={"down": "503"})
    for i in range(50):
        r = await client.patch(
            "/users/u4", json={"email": "busy@example.com", "firstName": f"v{i}"}
        )
        assert r.status_code == 200

    async def failed_once() -> bool:
        u = await user(client, "u4")
        return u["sync"]["attempts"] >= 1 and u["sync"]["lastError"] is not None

    await eventually(failed_once)
    assert (await user(client, "u4"))["sync"]["state"] == "pending"
    hubspot.delete("/_sandbox/requests")
    hubspot.delete("/_sandbox/faults")
    done = await synced(client, "u4")
    contact = contact_by_email(hubspot, "busy@example.com")
    assert contact is not None and contact["properties"]["firstname"] == "v49"
    assert done["firstName"] == "v49"
    assert len(writes(hubspot)) == 1


async def test_429_retry_after_is_respected(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    hubspot.put("/_sandbox/faults", json={"storm": True, "storm_retry_after": 2})
    await client.patch("/users/u5", json={"email": "polite@example.com"})

    async def deferred() -> dict[str, Any] | None:
        items = (await client.get("/admin/jobs", params={"kind": "users.propagate"})).json()[
            "items"
        ]
        return (
            items[0]
            if items and items[0]["attempts"] >= 1 and items[0]["state"] == "pending"
            else None
        )

    async def is_deferred() -> bool:
        return await deferred() is not None

    await eventually(is_deferred)
    job = await deferred()
    assert job is not None
    failed_at = datetime.fromtimestamp(
        hubspot.get("/_sandbox/requests").json()["requests"][-1]["at"], UTC
    )
    wait = (datetime.fromisoformat(job["run_at"]) - failed_at).total_seconds()
    assert wait >= 1.9, wait
    hubspot.delete("/_sandbox/faults")
    await synced(client, "u5")


@pytest.mark.parametrize("create_missing", [False])
async def test_404_with_creation_off_fails_without_retries(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    await client.patch("/users/u6", json={"email": "nobody@example.com"})

    async def failed() -> bool:
        return (await user(client, "u6"))["sync"]["state"] == "failed"

    await eventually(failed)
    u = await user(client, "u6")
    assert u["sync"]["attempts"] == 1 and "create_missing is off" in u["sync"]["lastError"]
    [job] = (await client.get("/admin/jobs", params={"kind": "users.propagate"})).json()["items"]
    assert job["state"] == "dead" and job["attempts"] == 1
    assert writes(hubspot) == []
    listed = (await client.get("/users", params={"sync_state": "failed"})).json()["items"]
    assert [x["id"] for x in listed] == ["u6"]
    assert (await client.get("/users", params={"sync_state": "synced"})).json()["items"] == []


async def test_a_crm_refusal_is_failed_with_the_crm_message(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    hubspot.put("/_sandbox/faults", json={"error_rate": 1.0, "error_status": 500})
    await client.patch("/users/u7", json={"email": "x@example.com"})

    async def retried() -> bool:
        return (await user(client, "u7"))["sync"]["attempts"] >= 2

    await eventually(retried)
    assert (await user(client, "u7"))["sync"]["state"] == "pending"  # 5xx: retried, not failed
    hubspot.delete("/_sandbox/faults")
    await synced(client, "u7")


@pytest.mark.parametrize("users_concurrency", [2])
async def test_crm_updates_run_at_most_users_concurrency_at_once(
    client: httpx.AsyncClient, hubspot: httpx.Client
) -> None:
    """A slow or rate-limited CRM holds each update's worker slot while it waits; the cap keeps
    the worker's other slots for other work."""
    # Slow enough that the second user's batch starts while the first is still in flight, even
    # on a loaded machine where the PATCHes below arrive tens of milliseconds apart.
    hubspot.put("/_sandbox/faults", json={"latency_ms": 500})
    for i in range(8):
        await client.patch(f"/users/c{i}", json={"email": f"c{i}@example.com"})
    for i in range(8):
        await synced(client, f"c{i}")
    calls = [
        (r["at"], r["at"] + r["duration_ms"] / 1000)
        for r in hubspot.get("/_sandbox/requests").json()["requests"]
        # the users' writes, not the connection's own sync (which the runtime starts at once)
        if "/batch/" in r["path"]
    ]
    assert len(calls) >= 3  # batches: the first two alone, the rest together
    overlap = max(sum(1 for s, e in calls if s <= at < e) for at, _ in calls)
    assert overlap == 2
