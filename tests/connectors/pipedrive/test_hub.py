"""Pipedrive through the hub, black-box over HTTP: a ``kind = "pipedrive"`` connection to the
Pipedrive simulator on a loopback port passes the contact and user tests the other CRMs pass
(sync with deletions, write-through, 409 on a duplicate email, custom fields, basic-auth
webhooks, user propagation), paces itself by ``x-ratelimit-*`` and refreshes OAuth2 tokens with
HTTP Basic app credentials."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from switchboard.config import Config, HubConfig, Settings
from switchboard.connectors.pipedrive.simulator import (
    API_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    PipedriveSimulator,
)
from switchboard.db import Database
from switchboard.http import Outbound
from switchboard.models import WebhookDelivery
from switchboard.syncs import service as syncs
from tests.contacts.conftest import (
    SyncNow,
    all_contacts,
    hub_url,  # noqa: F401 - the hub on a real port (webhooks)
)
from tests.support import (
    API_KEY,
    NO_SCHEDULED_SYNC,
    Backend,
    eventually,
    make_settings,
    when_free,
)
from tests.users.test_users import synced

PLAN = "5ba4c0a1e2f1d3b6a7c8e9f00112233445566778"
"""The key of a custom person field (Pipedrive names them by a 40-character hash)."""
HOOK_USER, HOOK_PASSWORD = "hub", "pipedrive-hook-password"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def runtime_enabled() -> bool:
    return True  # webhooks and user changes are applied by jobs


@pytest.fixture
def rate_limit() -> int:
    return 10_000


@pytest.fixture
def sim(rate_limit: int) -> PipedriveSimulator:
    return PipedriveSimulator(rate_limit=rate_limit)


@pytest.fixture
def sim_url(sim: PipedriveSimulator, asgi_server: Any) -> str:
    return str(asgi_server(sim.app))


@pytest.fixture
def create_missing() -> bool:
    return True


@pytest.fixture
def use_oauth() -> bool:
    return False


@pytest.fixture
def auth(sim_url: str, use_oauth: bool) -> dict[str, Any]:
    if not use_oauth:
        return {"api_token": API_TOKEN}
    return {
        "auth": {
            "type": "oauth2",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "token_url": sim_url + "/oauth/token",
        }
    }


@pytest.fixture
def settings(backend: Backend, tmp_path: Any) -> Settings:
    return make_settings(
        backend, tmp_path, api_keys=[API_KEY], http_max_attempts=3, http_request_max_wait=2.0
    )


@pytest.fixture
def hub_config(sim_url: str, create_missing: bool, auth: dict[str, Any]) -> HubConfig:
    return HubConfig.model_validate(
        {
            "connections": {
                "pipedrive": {
                    "kind": "pipedrive",
                    "base_url": sim_url,
                    **auth,
                    "webhook_user": HOOK_USER,
                    "webhook_password": HOOK_PASSWORD,
                    "page_size": 50,
                    "sync_interval": NO_SCHEDULED_SYNC,
                    "custom_fields": {"plan": PLAN},
                }
            },
            "contacts": {"default_connection": "pipedrive"},
            "users": {"crm_connection": "pipedrive", "create_missing": create_missing},
        }
    )


@pytest.fixture
async def outbound(config: Config, db: Database) -> AsyncIterator[Outbound]:
    out = Outbound(config, db)
    yield out
    await out.aclose()


@pytest.fixture
def sync_now(config: Config, db: Database, outbound: Outbound) -> SyncNow:
    async def run(name: str = "pipedrive", *, full: bool = False) -> Any:
        return await when_free(lambda: syncs.run_now(config, db, outbound, name, full=full))

    return run


@pytest.fixture(autouse=True)
async def first_sync_done(client: httpx.AsyncClient, sim: PipedriveSimulator) -> None:
    """The runtime syncs the connection once at start: the tests begin after that sync, with
    the simulator's request log emptied."""

    async def done() -> bool:
        runs = (await client.get("/connections/pipedrive/runs", params={"limit": 1})).json()
        return bool(runs["items"]) and runs["items"][0]["outcome"] != "running"

    await eventually(done, timeout=30)
    sim.log.clear()


def person(sim: PipedriveSimulator, person_id: int | str) -> dict[str, Any]:
    return sim.store.get(int(person_id))


def primary_email(p: dict[str, Any]) -> str | None:
    return next((i["value"] for i in p["email"] if i["primary"]), None)


def reads_of(sim: PipedriveSimulator, person_id: str) -> int:
    return sum(
        (e["method"], e["path"]) == ("GET", f"/v1/persons/{person_id}") for e in sim.log.entries()
    )


async def test_sync_reads_every_page_and_tombstones_deleted_persons(
    sim: PipedriveSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    made = sim.store.seed(120)
    _, result, error = await sync_now(full=True)
    assert error is None, error
    assert result is not None and result.pages == 3 and result.upserted == 120
    sim.store.update(made[0]["id"], {"name": "Changed Name"})
    sim.store.delete(made[1]["id"])
    _, result, error = await sync_now()
    assert error is None and result is not None and result.deleted == 1
    items = {
        i["externalId"]: i
        for i in await all_contacts(client, connection="pipedrive", include_deleted="true")
    }
    assert len(items) == 120
    first, second, third = (items[str(p["id"])] for p in made[:3])
    assert (first["firstName"], first["lastName"]) == ("Changed", "Name")
    assert second["deletedAt"] is not None
    assert third["deletedAt"] is None and third["email"] == primary_email(made[2])
    assert (
        third["company"] == made[2]["org_name"] and third["phone"] == made[2]["phone"][0]["value"]
    )
    live = await all_contacts(client, connection="pipedrive")
    assert len(live) == 119
    starts = [e["query"] for e in sim.log.entries() if e["path"] == "/v1/persons"]
    assert any("start=50" in q for q in starts) and any("start=100" in q for q in starts)


async def test_crud_goes_through_to_pipedrive(
    sim: PipedriveSimulator, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/contacts",
        json={
            "email": "Grace@Example.com",
            "firstName": "Grace",
            "lastName": "Hopper",
            "phone": "+1555",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["connection"] == "pipedrive" and body["email"] == "grace@example.com"
    remote = person(sim, body["externalId"])
    assert remote["name"] == "Grace Hopper" and primary_email(remote) == "grace@example.com"

    patched = await client.patch(f"/contacts/{body['id']}", json={"firstName": "Amazing"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Amazing Hopper" and patched.json()["phone"] == "+1555"
    assert person(sim, body["externalId"])["name"] == "Amazing Hopper"
    company = await client.patch(f"/contacts/{body['id']}", json={"company": "Navy"})
    assert company.status_code == 422  # an organization, not a text field

    put = await client.put(
        f"/contacts/{body['id']}", json={"email": "grace@example.com", "firstName": "G"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["lastName"] is None and put.json()["phone"] is None
    remote = person(sim, body["externalId"])
    assert remote["name"] == "G" and remote["phone"] == []
    stored = (await client.get(f"/contacts/{body['id']}")).json()
    assert stored["firstName"] == "G" and stored["lastName"] is None

    assert (await client.delete(f"/contacts/{body['id']}")).status_code == 204
    assert person(sim, body["externalId"])["active_flag"] is False
    assert (await client.get(f"/contacts/{body['id']}")).status_code == 404
    assert (await client.delete(f"/contacts/{body['id']}")).status_code == 404


async def test_duplicate_email_is_409_naming_the_existing_person(
    sim: PipedriveSimulator, client: httpx.AsyncClient
) -> None:
    sim.store.seed(3)
    existing = sim.store.create({"name": "First One", "email": "dup@example.com"})
    response = await client.post(
        "/contacts", json={"email": "DUP@example.com", "firstName": "Second"}
    )
    assert response.status_code == 409, response.text
    assert response.json()["existingExternalId"] == str(existing["id"])
    assert len(sim.store.active()) == 4


async def test_a_custom_field_is_read_filtered_and_written(
    sim: PipedriveSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    gold = sim.store.create({"name": "Ada Lovelace", "email": "ada@example.com", PLAN: "gold"})
    sim.store.create({"name": "Alan Turing", "email": "alan@example.com"})
    _, _, error = await sync_now(full=True)
    assert error is None, error
    [found] = await all_contacts(client, **{"fields.plan": "gold"})
    assert found["externalId"] == str(gold["id"]) and found["fields"] == {"plan": "gold"}

    created = await client.post(
        "/contacts",
        json={"email": "grace@example.com", "firstName": "Grace", "fields": {"plan": "silver"}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["fields"] == {"plan": "silver"}
    assert person(sim, created.json()["externalId"])[PLAN] == "silver"
    cleared = await client.patch(f"/contacts/{found['id']}", json={"fields": {"plan": None}})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["fields"] == {"plan": None}
    assert person(sim, gold["id"])[PLAN] is None


async def test_basic_auth_webhooks_are_applied_and_bad_ones_refused(
    sim: PipedriveSimulator,
    db: Database,
    hub_url: str,  # noqa: F811 - the fixture imported above
    client: httpx.AsyncClient,
) -> None:
    url = hub_url + "/webhooks/pipedrive"
    sim.webhooks.configure(url=url, http_auth_user=HOOK_USER, http_auth_password=HOOK_PASSWORD)
    kept = sim.store.create({"name": "Ada Lovelace", "email": "ada@example.com"})
    sim.store.update(kept["id"], {"name": "Ada Byron"})
    gone = sim.store.create({"name": "Alan Turing", "email": "alan@example.com"})
    sim.store.delete(gone["id"])

    async def applied() -> bool:
        items = {i["externalId"]: i for i in await all_contacts(client, include_deleted="true")}
        mine = items.get(str(kept["id"]), {})
        other = items.get(str(gone["id"]))
        return mine.get("lastName") == "Byron" and (other is None or other["deletedAt"] is not None)

    await eventually(applied, timeout=15)
    assert all(a.ok for a in sim.webhooks.outbox.attempts())

    body = json.dumps(
        {
            "v": 1,
            "event": "updated.person",
            "meta": {"action": "updated", "object": "person", "id": kept["id"], "timestamp": 1},
            "current": kept,
            "previous": kept,
        }
    ).encode()
    async with httpx.AsyncClient() as http:

        async def post(headers: dict[str, str]) -> int:
            return (await http.post(url, content=body, headers=headers)).status_code

        assert await post({}) == 401
        assert await post({"Authorization": basic(HOOK_USER, "wrong")}) == 401
        assert await post({"Authorization": basic("other", HOOK_PASSWORD)}) == 401
        assert await post({"Authorization": basic(HOOK_USER, HOOK_PASSWORD)}) == 200
    async with db.read_session() as session:
        outcomes = dict(
            (
                await session.execute(
                    select(WebhookDelivery.outcome, func.count())
                    .where(WebhookDelivery.connection == "pipedrive")
                    .group_by(WebhookDelivery.outcome)
                )
            ).all()
        )
    assert outcomes.get("bad_signature") == 3
    assert outcomes.get("accepted", 0) >= 5  # the simulator's four and the hand-made one


async def test_users_propagate_create_update_and_clear(
    sim: PipedriveSimulator, client: httpx.AsyncClient
) -> None:
    existing = sim.store.create({"name": "Ada Lovelace", "email": "old@example.com"})
    await client.patch("/users/u1", json={"email": "old@example.com", "lastName": "Byron"})
    first = await synced(client, "u1")
    assert first["sync"]["crmContactId"] == str(existing["id"])
    assert person(sim, existing["id"])["name"] == "Ada Byron"

    await client.patch("/users/u1", json={"email": "new@example.com", "lastName": None})
    second = await synced(client, "u1")
    assert second["sync"]["crmContactId"] == str(existing["id"])
    remote = person(sim, existing["id"])
    assert primary_email(remote) == "new@example.com"
    assert remote["name"] == "Ada" and remote["last_name"] is None  # the cleared field

    await client.patch(
        "/users/u2",
        json={"email": "fresh@example.com", "firstName": "Fresh", "fields": {"plan": "gold"}},
    )
    created = (await synced(client, "u2"))["sync"]["crmContactId"]
    fresh = person(sim, created)
    assert fresh["name"] == "Fresh" and primary_email(fresh) == "fresh@example.com"
    assert fresh[PLAN] == "gold"
    assert len(sim.store.active()) == 2


@pytest.mark.parametrize("create_missing", [False])
async def test_create_missing_off_never_creates(
    sim: PipedriveSimulator, client: httpx.AsyncClient
) -> None:
    await client.patch("/users/u6", json={"email": "nobody@example.com"})

    async def failed() -> bool:
        u = (await client.get("/users/u6")).json()
        return bool(u["sync"]["state"] == "failed")

    await eventually(failed, timeout=20)
    u = (await client.get("/users/u6")).json()
    assert "create_missing is off" in u["sync"]["lastError"]
    assert sim.store.active() == []
    assert not [e for e in sim.log.entries() if e["method"] in ("POST", "PUT")]


@pytest.mark.parametrize("rate_limit", [4])
async def test_the_budget_paces_by_x_ratelimit_headers(
    sim: PipedriveSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    """Four requests per 2-second window: a sync of many pages and writes right after it stay
    under it (the hub learns the limit from the answers) and never see a 429."""
    sim.store.seed(300)
    started = time.monotonic()
    _, result, error = await sync_now(full=True)
    assert error is None, error
    assert result is not None and result.pages == 6
    for n, contact in enumerate((await all_contacts(client))[:3]):
        # a name part needs the person's current name: a read and a write each
        answer = await client.patch(f"/contacts/{contact['id']}", json={"firstName": f"N{n}"})
        assert answer.status_code == 200, answer.text
    entries = sim.log.entries()
    log = "\n".join(
        f"{e['at']:.3f} {e['method']} {e['path']}?{e['query']} {e['status']}" for e in entries
    )
    statuses = [e["status"] for e in entries]
    assert 429 not in statuses, log
    assert len(statuses) == 12, log  # 6 pages, then a read and a write per contact
    # twelve requests at four per two seconds take at least two full windows
    assert time.monotonic() - started >= 4.0


@pytest.mark.parametrize("use_oauth", [True])
async def test_oauth2_refresh_with_basic_app_credentials(
    sim: PipedriveSimulator,
    sync_now: SyncNow,
    client: httpx.AsyncClient,
) -> None:
    """The connection has no API token: the sync and a write-through go out with an access
    token the hub obtained from the simulator's token endpoint (HTTP Basic app credentials)."""
    sim.store.seed(3)
    _, result, error = await sync_now(full=True)
    assert error is None, error
    assert result is not None and result.upserted == 3
    assert sim.access_tokens, "a token was issued by the refresh-token grant"
    sim.access_tokens.clear()  # revoked: the next call is a 401, which refreshes once
    created = await client.post("/contacts", json={"email": "o@example.com", "firstName": "O"})
    assert created.status_code == 201, created.text
    assert person(sim, created.json()["externalId"])["name"] == "O"
    calls = [(e["method"], e["path"], e["status"]) for e in sim.log.entries()]
    assert ("POST", "/oauth/token", 200) in calls
    assert calls[-1] == ("POST", "/v1/persons", 201)
    assert not [c for c in calls if c[2] == 401 and c[1] != "/v1/persons/search"]


async def test_webhooks_echoing_the_hubs_own_writes_cost_no_read(
    sim: PipedriveSimulator,
    hub_url: str,  # noqa: F811 - the fixture imported above
    client: httpx.AsyncClient,
) -> None:
    """The hub creates and updates a user's person; Pipedrive's ``added``/``updated.person``
    webhooks about those writes are logged but not read back. A change made in Pipedrive by
    someone else is read (one GET) and stored."""
    sim.webhooks.configure(
        url=hub_url + "/webhooks/pipedrive",
        http_auth_user=HOOK_USER,
        http_auth_password=HOOK_PASSWORD,
    )

    async def settled(deliveries: int) -> None:
        """The simulator's first ``deliveries`` webhooks answered (the hub enqueues any refresh
        before it answers; an echo may need none) and every refresh job finished."""

        async def done() -> bool:
            attempts = sim.webhooks.outbox.attempts()
            jobs = (
                await client.get("/admin/jobs", params={"kind": "contacts.refresh", "limit": 100})
            ).json()["items"]
            return len([a for a in attempts if a.ok]) >= deliveries and all(
                j["state"] in ("succeeded", "dead") for j in jobs
            )

        await eventually(done, timeout=20)

    await client.patch("/users/u1", json={"email": "ada@example.com", "firstName": "Ada"})
    person_id = (await synced(client, "u1"))["sync"]["crmContactId"]
    await settled(1)
    assert reads_of(sim, person_id) == 0  # the creation: search, POST, and no read back

    await client.patch("/users/u1", json={"email": "ada@example.com", "lastName": "Byron"})
    await synced(client, "u1")
    await settled(2)
    # the update reads the person once for its name; the webhook about it adds no read
    assert reads_of(sim, person_id) == 1
    assert person(sim, person_id)["name"] == "Ada Byron"

    sim.store.update(int(person_id), {"name": "Augusta Byron", PLAN: "gold"})
    await settled(3)
    assert reads_of(sim, person_id) == 2
    [stored] = await all_contacts(client)
    assert stored["firstName"] == "Augusta" and stored["fields"] == {"plan": "gold"}
