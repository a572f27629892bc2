"""HubSpot simulator over HTTP: contacts, batch, search, errors, auth and rate limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from switchboard.connectors.hubspot.simulator import HubSpotLimits, HubSpotSimulator

CONTACTS = "/crm/v3/objects/contacts"
AUTH = {"Authorization": "Bearer pat-sandbox"}


@pytest.fixture
def sim() -> HubSpotSimulator:
    # Functional tests search more than 5 times a second; the limit has its own test.
    return HubSpotSimulator(contacts=30, seed=3, limits=HubSpotLimits(search_per_second=1000))


@pytest.fixture
async def http(
    sim: HubSpotSimulator, asgi_server: Callable[[Any], str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=asgi_server(sim.app), headers=AUTH) as c:
        yield c


async def search(http: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await http.post(f"{CONTACTS}/search", json=body)


def eq(name: str, op: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "filterGroups": [
            {"filters": [{"propertyName": name, "operator": op, "value": value, **extra}]}
        ]
    }


# --- contacts --------------------------------------------------------------------------------


async def test_list_pages_with_opaque_after_and_caps_limit(http: httpx.AsyncClient) -> None:
    first = (await http.get(CONTACTS, params={"limit": 20})).json()

    assert [r["id"] for r in first["results"]] == [str(i) for i in range(1, 21)]
    after = first["paging"]["next"]["after"]
    assert not after.isdigit()  # opaque, not an id
    assert first["paging"]["next"]["link"].endswith(f"after={after}")
    last = (await http.get(CONTACTS, params={"limit": 20, "after": after})).json()
    assert [r["id"] for r in last["results"]] == [str(i) for i in range(21, 31)]
    assert "paging" not in last
    capped = (await http.get(CONTACTS, params={"limit": 500})).json()
    assert len(capped["results"]) == 30
    default = (await http.get(CONTACTS)).json()
    assert len(default["results"]) == 10


async def test_properties_param_and_defaults(http: httpx.AsyncClient) -> None:
    body = (
        await http.get(CONTACTS, params={"limit": 1, "properties": "company,phone,nope"})
    ).json()
    props = body["results"][0]["properties"]

    assert set(props) == {"company", "phone", "createdate", "hs_object_id", "lastmodifieddate"}
    default = (await http.get(CONTACTS, params={"limit": 1})).json()["results"][0]
    assert set(default["properties"]) == {
        "firstname",
        "lastname",
        "email",
        "createdate",
        "hs_object_id",
        "lastmodifieddate",
    }
    assert default["archived"] is False


async def test_crud_and_archive(http: httpx.AsyncClient) -> None:
    created = await http.post(
        CONTACTS, json={"properties": {"email": "new@x.io", "firstname": "N"}, "associations": []}
    )
    assert created.status_code == 201
    contact = created.json()
    cid = contact["id"]
    assert cid == "31"
    assert contact["properties"]["hs_object_id"] == cid
    assert contact["createdAt"] == contact["updatedAt"]

    by_email = await http.get(f"{CONTACTS}/new%40x.io", params={"idProperty": "email"})
    assert by_email.json()["id"] == cid
    patched = await http.patch(f"{CONTACTS}/{cid}", json={"properties": {"lastname": "L"}})
    assert patched.status_code == 200
    assert patched.json()["properties"]["lastname"] == "L"

    assert (await http.delete(f"{CONTACTS}/{cid}")).status_code == 204
    assert (await http.delete(f"{CONTACTS}/{cid}")).status_code == 204  # idempotent
    gone = await http.get(f"{CONTACTS}/{cid}")
    assert gone.status_code == 404
    assert gone.json()["category"] == "OBJECT_NOT_FOUND"
    assert gone.json()["message"] == "Object not found.  objectId are usually numeric."
    archived = (await http.get(CONTACTS, params={"archived": "true"})).json()["results"]
    assert [a["id"] for a in archived] == [cid]
    assert archived[0]["archived"] is True
    assert archived[0]["archivedAt"]
    listed = (await http.get(CONTACTS, params={"limit": 100})).json()["results"]
    assert cid not in {r["id"] for r in listed}
    # The email is free again once the contact is archived.
    again = await http.post(CONTACTS, json={"properties": {"email": "new@x.io"}})
    assert again.status_code == 201


async def test_validation_errors(http: httpx.AsyncClient) -> None:
    unknown = await http.patch(f"{CONTACTS}/1", json={"properties": {"shoe_size": "9"}})
    assert unknown.status_code == 400
    assert unknown.json()["category"] == "VALIDATION_ERROR"
    assert "PROPERTY_DOESNT_EXIST" in unknown.json()["message"]
    read_only = await http.patch(f"{CONTACTS}/1", json={"properties": {"hs_object_id": "9"}})
    assert "READ_ONLY_VALUE" in read_only.json()["message"]
    bad_email = await http.post(CONTACTS, json={"properties": {"email": "nope"}})
    assert bad_email.status_code == 400
    bad_json = await http.post(CONTACTS, content=b"{", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.json()["message"].startswith("Invalid input JSON")
    assert (await http.get(f"{CONTACTS}/abc")).status_code == 404


async def test_batch_operations(http: httpx.AsyncClient) -> None:
    read = await http.post(
        f"{CONTACTS}/batch/read",
        json={"inputs": [{"id": "1"}, {"id": "999"}], "properties": ["email"]},
    )
    assert read.status_code == 207
    assert [r["id"] for r in read.json()["results"]] == ["1"]
    assert read.json()["errors"][0]["context"]["ids"] == ["999"]

    created = await http.post(
        f"{CONTACTS}/batch/create",
        json={"inputs": [{"properties": {"email": f"b{i}@x.io"}} for i in range(3)]},
    )
    assert created.status_code == 201
    ids = [r["id"] for r in created.json()["results"]]
    assert created.json()["status"] == "COMPLETE"

    updated = await http.post(
        f"{CONTACTS}/batch/update",
        json={"inputs": [{"id": i, "properties": {"company": "Co"}} for i in ids]},
    )
    assert updated.status_code == 200
    assert {r["properties"]["company"] for r in updated.json()["results"]} == {"Co"}

    upsert = await http.post(
        f"{CONTACTS}/batch/upsert",
        json={
            "inputs": [
                {"id": "b0@x.io", "idProperty": "email", "properties": {"firstname": "B"}},
                {"id": "fresh@x.io", "idProperty": "email", "properties": {"firstname": "F"}},
            ]
        },
    )
    assert [r["new"] for r in upsert.json()["results"]] == [False, True]
    assert upsert.json()["results"][0]["id"] == ids[0]

    too_many = await http.post(
        f"{CONTACTS}/batch/read", json={"inputs": [{"id": str(i)} for i in range(101)]}
    )
    assert too_many.status_code == 400
    duplicate = await http.post(
        f"{CONTACTS}/batch/create",
        json={
            "inputs": [{"properties": {"email": "z@x.io"}}, {"properties": {"email": "b1@x.io"}}]
        },
    )
    assert duplicate.status_code == 409
    assert (
        await http.get(f"{CONTACTS}/z%40x.io", params={"idProperty": "email"})
    ).status_code == 404

    archive = await http.post(
        f"{CONTACTS}/batch/archive", json={"inputs": [{"id": i} for i in ids]}
    )
    assert archive.status_code == 204
    assert (await http.get(f"{CONTACTS}/{ids[0]}")).status_code == 404


# --- search ----------------------------------------------------------------------------------


async def test_search_operators(http: httpx.AsyncClient, sim: HubSpotSimulator) -> None:
    sim.ui_update(5, {"firstname": "Quentin", "email": "quentin.tarantino@films.example"})
    sim.ui_update(6, {"phone": ""})

    async def ids(**body: Any) -> list[str]:
        response = await search(http, limit=100, **body)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["results"]]

    assert await ids(**eq("firstname", "EQ", "quentin")) == ["5"]
    assert "5" not in await ids(**eq("firstname", "NEQ", "Quentin"))
    assert await ids(**eq("hs_object_id", "LT", "3")) == ["1", "2"]
    assert await ids(**eq("hs_object_id", "LTE", "2")) == ["1", "2"]
    assert await ids(**eq("hs_object_id", "GT", "28")) == ["29", "30"]
    assert await ids(**eq("hs_object_id", "IN", values=["7", "9"])) == ["7", "9"]
    assert await ids(**eq("email", "CONTAINS_TOKEN", "tarantino")) == ["5"]
    assert await ids(**eq("email", "CONTAINS_TOKEN", "quent*")) == ["5"]
    assert "6" not in await ids(**eq("phone", "HAS_PROPERTY"))
    assert len(await ids(**eq("phone", "HAS_PROPERTY"))) == 29
    modified = sim.store.get(5)
    assert modified is not None
    since = await ids(**eq("lastmodifieddate", "GTE", str(modified.updated_ms)))
    assert set(since) == {"5", "6"}
    two_groups = {
        "filterGroups": [
            {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": "1"}]},
            {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": "2"}]},
        ]
    }
    assert await ids(**two_groups) == ["1", "2"]
    newest = await ids(sorts=[{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}])
    assert newest[:2] == ["6", "5"]


async def test_search_never_returns_archived(
    http: httpx.AsyncClient, sim: HubSpotSimulator
) -> None:
    sim.ui_delete(3)

    body = (await search(http, limit=100)).json()

    assert body["total"] == 29
    assert "3" not in {r["id"] for r in body["results"]}


async def test_search_validation_and_the_10k_window(http: httpx.AsyncClient) -> None:
    assert (await search(http, limit=201)).status_code == 400
    two_sorts = await search(http, sorts=["email", "firstname"])
    assert two_sorts.status_code == 400
    assert (await search(http, after="9800", limit=200)).status_code == 200
    past = await search(http, after="10000", limit=10)
    assert past.status_code == 400
    assert past.json()["category"] == "VALIDATION_ERROR"
    unknown = await search(http, **eq("shoe_size", "EQ", "1"))
    assert unknown.status_code == 400


async def test_search_paging_reaches_the_end(http: httpx.AsyncClient) -> None:
    seen: list[str] = []
    after: str | None = "0"
    while after is not None:
        body = (await search(http, limit=7, after=after)).json()
        seen += [r["id"] for r in body["results"]]
        after = body.get("paging", {}).get("next", {}).get("after")
    assert seen == [str(i) for i in range(1, 31)]


# --- auth ------------------------------------------------------------------------------------


async def test_missing_and_expired_tokens(http: httpx.AsyncClient, sim: HubSpotSimulator) -> None:
    missing = await http.get(CONTACTS, headers={"Authorization": ""})
    assert missing.status_code == 401
    assert missing.json()["category"] == "INVALID_AUTHENTICATION"

    registered = await http.post(
        "/_sandbox/hubspot/tokens", json={"token": "t-1", "expires_in": 60}
    )
    assert registered.status_code == 201
    ok = await http.get(CONTACTS, headers={"Authorization": "Bearer t-1"})
    assert ok.status_code == 200
    assert "X-HubSpot-RateLimit-Daily" not in ok.headers  # only private apps get daily headers
    await http.post("/_sandbox/hubspot/tokens/expire", json={"token": "t-1"})
    expired = await http.get(CONTACTS, headers={"Authorization": "Bearer t-1"})
    assert expired.status_code == 401
    body = expired.json()
    assert body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"].startswith("The OAuth token used to make this call expired ")
    assert body["message"].endswith(" second(s) ago.")


async def test_oauth_errors(http: httpx.AsyncClient) -> None:
    form = {
        "grant_type": "refresh_token",
        "client_id": "sandbox-client-id",
        "client_secret": "sandbox-client-secret",
        "refresh_token": "nope",
    }
    bad = await http.post("/oauth/v1/token", data=form)
    assert bad.status_code == 400
    assert bad.json()["status"] == "BAD_REFRESH_TOKEN"
    assert bad.json()["error_description"] == "refresh token is invalid, expired or revoked"
    wrong_client = await http.post("/oauth/v1/token", data={**form, "client_id": "x"})
    assert wrong_client.json()["error"] == "invalid_client"


# --- rate limits -----------------------------------------------------------------------------


async def test_rate_limit_headers_count_down(http: httpx.AsyncClient) -> None:
    first = await http.get(CONTACTS)
    second = await http.get(CONTACTS)

    assert first.headers["X-HubSpot-RateLimit-Max"] == "100"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert int(second.headers["X-HubSpot-RateLimit-Remaining"]) == (
        int(first.headers["X-HubSpot-RateLimit-Remaining"]) - 1
    )
    assert first.headers["X-HubSpot-RateLimit-Daily"] == "250000"
    assert "X-HubSpot-RateLimit-Daily-Remaining" in first.headers


async def test_rolling_limit_holds_under_concurrent_load(
    http: httpx.AsyncClient, sim: HubSpotSimulator
) -> None:
    limit, window = 15, 0.3
    sim.set_limits(HubSpotLimits(per_interval=limit, interval_ms=int(window * 1000)))
    semaphore = asyncio.Semaphore(12)

    async def call() -> httpx.Response:
        async with semaphore:
            return await http.get(CONTACTS, params={"limit": 1})

    deadline = time.monotonic() + 1.0
    responses: list[httpx.Response] = []
    while time.monotonic() < deadline:
        responses += await asyncio.gather(*(call() for _ in range(24)))

    throttled = [r for r in responses if r.status_code == 429]
    assert throttled, "the load never reached the limit"
    assert {r.status_code for r in responses} == {200, 429}
    body = throttled[0].json()
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert throttled[0].headers["X-HubSpot-RateLimit-Remaining"] == "0"
    # No rolling window holds more admitted requests than the limit (times from the limiter's
    # own clock, recorded in the request log).
    admitted = sorted(e["admitted_at"] for e in sim.log.entries() if e["status"] == 200)
    assert len(admitted) >= 2 * limit
    for i, start in enumerate(admitted):
        in_window = [t for t in admitted[i:] if t < start + window]
        assert len(in_window) <= limit


async def test_search_limit_is_secondly_without_headers(
    http: httpx.AsyncClient, sim: HubSpotSimulator
) -> None:
    sim.set_limits(HubSpotLimits())  # HubSpot's own: 5 searches per second

    responses = await asyncio.gather(*(search(http) for _ in range(9)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 5 + [429] * 4
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.json()["policyName"] == "SECONDLY"
    assert throttled.json()["message"] == "You have reached your secondly limit."
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in throttled.headers)
    ok = next(r for r in responses if r.status_code == 200)
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in ok.headers)


async def test_daily_limit(http: httpx.AsyncClient, sim: HubSpotSimulator) -> None:
    limits = await http.patch("/_sandbox/hubspot/limits", json={"daily": 2})
    assert limits.json()["daily"] == 2

    statuses = [(await http.get(CONTACTS)).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    last = await http.get(CONTACTS)
    assert last.json()["policyName"] == "DAILY"


# --- data ------------------------------------------------------------------------------------


def test_seeding_is_deterministic() -> None:
    def snapshot(sim: HubSpotSimulator) -> list[dict[str, Any]]:
        return [
            c.render(["email", "firstname", "lastname", "company", "phone"])
            for c in sim.store.active()
        ]

    assert snapshot(HubSpotSimulator(contacts=50, seed=9)) == snapshot(
        HubSpotSimulator(contacts=50, seed=9)
    )
    assert snapshot(HubSpotSimulator(contacts=50, seed=9)) != snapshot(
        HubSpotSimulator(contacts=50, seed=10)
    )


async def test_search_lag_hides_fresh_changes(asgi_server: Callable[[Any], str]) -> None:
    sim = HubSpotSimulator(contacts=3, search_lag_ms=60_000)
    sim.ui_update(2, {"firstname": "Fresh"})
    async with httpx.AsyncClient(base_url=asgi_server(sim.app), headers=AUTH) as http:
        found = (await search(http, limit=10)).json()
        listed = (await http.get(CONTACTS)).json()

    assert [r["id"] for r in found["results"]] == ["1", "3"]
    assert len(listed["results"]) == 3  # reads by id/list are immediate


async def test_the_documented_sync_strategy_passes_the_10k_window(
    asgi_server: Callable[[Any], str],
) -> None:
    """More than 10,000 contacts share one timestamp: paging by offset alone hits the 400,
    restarting at after=0 with `hs_object_id GTE last+1` reads them all (HUBSPOT.md)."""
    sim = HubSpotSimulator(limits=HubSpotLimits(search_per_second=1000))
    sim.store.seed(10_050, spacing_ms=0)
    stamp = str(sim.store.contacts[1].updated_ms)
    async with httpx.AsyncClient(base_url=asgi_server(sim.app), headers=AUTH) as http:
        seen: list[int] = []
        last_id, after = 0, "0"
        while True:
            body = {
                "filterGroups": [
                    {
                        "filters": [
                            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": stamp},
                            {
                                "propertyName": "hs_object_id",
                                "operator": "GTE",
                                "value": str(last_id + 1),
                            },
                        ]
                    }
                ],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": ["email"],
                "limit": 200,
                "after": after,
            }
            response = await http.post(f"{CONTACTS}/search", json=body)
            assert response.status_code == 200, response.text
            page = response.json()
            seen += [int(r["id"]) for r in page["results"]]
            nxt = page.get("paging", {}).get("next", {}).get("after")
            if nxt is None:
                break
            if int(nxt) >= 10_000:
                last_id, after = seen[-1], "0"
            else:
                after = nxt
        naive = await search(http, limit=200, after="10000")

    assert seen == list(range(1, 10_051))
    assert naive.status_code == 400
