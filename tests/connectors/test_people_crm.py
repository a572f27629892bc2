"""A second CRM shape through the declarative connector, described only by a connections file
(``people_crm.toml``): the People simulator's cursor pages, nested records, API key and
timestamped signatures pass the contact tests the ACME mapped CRM passes, through HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.config import Config, HubConfig, Settings, load_config
from switchboard.connectors.crm import crm_client
from switchboard.connectors.mapped_crm.simulators import people as people_mod
from switchboard.connectors.mapped_crm.simulators.people import PeopleSimulator
from switchboard.db import Database
from switchboard.errors import TransientError
from switchboard.http import Outbound
from switchboard.settings import parse_duration
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

TOML = Path(__file__).with_name("people_crm.toml")


@pytest.fixture
def runtime_enabled() -> bool:
    return True  # webhooks are applied by refresh jobs


@pytest.fixture
def people() -> PeopleSimulator:
    return PeopleSimulator()


@pytest.fixture
def people_url(people: PeopleSimulator, asgi_server: Any) -> str:
    return str(asgi_server(people.app))


def people_config(settings: Settings, url: str) -> Config:
    env = {
        "PEOPLE_URL": url,
        "PEOPLE_API_KEY": people_mod.API_KEY,
        "PEOPLE_WEBHOOK_SECRET": people_mod.WEBHOOK_SECRET,
    }
    return load_config(settings.model_copy(update={"config": TOML}), env=env)


@pytest.fixture
def settings(backend: Backend, tmp_path: Any) -> Settings:
    return make_settings(
        backend, tmp_path, api_keys=[API_KEY], http_max_attempts=3, http_request_max_wait=2.0
    )


@pytest.fixture
def hub_config(settings: Settings, people_url: str) -> HubConfig:
    hub = people_config(settings, people_url).hub
    # These tests count the CRM's requests: no scheduled sync after the one at start.
    people = hub.connections["people"].model_copy(
        update={"sync_interval": parse_duration(NO_SCHEDULED_SYNC)}
    )
    return hub.model_copy(update={"connections": {**hub.connections, "people": people}})


@pytest.fixture
async def outbound(config: Config, db: Database) -> AsyncIterator[Outbound]:
    out = Outbound(config, db)
    yield out
    await out.aclose()


@pytest.fixture
def sync_now(config: Config, db: Database, outbound: Outbound) -> SyncNow:
    async def run(name: str = "people", *, full: bool = False) -> Any:
        return await when_free(lambda: syncs.run_now(config, db, outbound, name, full=full))

    return run


@pytest.fixture(autouse=True)
async def first_sync_done(client: httpx.AsyncClient) -> None:
    """The runtime syncs the connection once at start: the tests begin after that sync, so
    their own data and counts are not split with it."""

    async def synced() -> bool:
        runs = (await client.get("/connections/people/runs", params={"limit": 1})).json()
        return bool(runs["items"]) and runs["items"][0]["outcome"] != "running"

    await eventually(synced, timeout=30)


def _person(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": {"first": f"F{i}", "last": "L"},
        "emails": [
            {"value": f"old{i}@example.com"},
            {"value": f"p{i}@example.com", "primary": True},
        ],
        "org": {"name": "Org"},
        **extra,
    }


async def test_sync_reads_every_cursor_page_and_tombstones_what_disappeared(
    people: PeopleSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    uids = [people.create(_person(i))["uid"] for i in range(120)]
    _, result, error = await sync_now(full=True)
    assert error is None, error
    assert result is not None and result.pages == 3 and result.upserted == 120
    people.update(uids[0], {"name": {"first": "Changed"}})
    people.delete(uids[1])
    _, result, error = await sync_now()
    assert error is None and result is not None
    assert result.upserted == 1 and result.deleted == 1
    items = {
        i["externalId"]: i
        for i in await all_contacts(client, connection="people", include_deleted="true")
    }
    assert len(items) == 120
    assert items[uids[0]]["name"] == "Changed L"
    assert items[uids[1]]["deletedAt"] is not None
    third = items[uids[2]]
    assert (third["email"], third["company"], third["deletedAt"]) == ("p2@example.com", "Org", None)
    cursors = [e for e in people.log.entries() if "cursor=" in e["query"]]
    assert cursors, "later pages are asked with the cursor from the body"


async def test_crud_arrives_in_the_nested_shape(
    people: PeopleSimulator, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/contacts",
        json={
            "email": "Ada@Example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "company": "Engines",
            "connection": "people",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    uid = body["externalId"]
    assert people.people[uid]["name"] == {"first": "Ada", "last": "Lovelace"}
    assert people.people[uid]["emails"] == [{"value": "ada@example.com", "primary": True}]
    assert people.people[uid]["org"] == {"name": "Engines"}
    found = await client.get(f"/contacts/{body['id']}")
    assert found.status_code == 200 and found.json()["email"] == "ada@example.com"
    patched = await client.patch(f"/contacts/{body['id']}", json={"firstName": "Augusta"})
    assert patched.status_code == 200, patched.text
    assert people.people[uid]["name"] == {"first": "Augusta", "last": "Lovelace"}  # merged
    assert patched.json()["name"] == "Augusta Lovelace"
    unknown = await client.patch(f"/contacts/{body['id']}", json={"phone": "+1555"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "phone"]
    assert (await client.delete(f"/contacts/{body['id']}")).status_code == 204
    assert uid not in people.people
    assert (await client.get(f"/contacts/{body['id']}")).status_code == 404


async def test_duplicate_email_is_409_naming_the_existing_contact(
    people: PeopleSimulator, client: httpx.AsyncClient
) -> None:
    for i in range(60):  # the existing one is on the second page
        people.create(_person(i))
    existing = people.create(_person(99, emails=[{"value": "dup@example.com", "primary": True}]))
    response = await client.post(
        "/contacts",
        json={"email": "DUP@example.com", "firstName": "Second", "connection": "people"},
    )
    assert response.status_code == 409, response.text
    assert response.json()["existingExternalId"] == existing["uid"]
    assert len(people.people) == 61


async def test_signed_webhooks_are_applied_and_forged_ones_refused(
    people: PeopleSimulator,
    hub_url: str,  # noqa: F811 - the fixture imported above
    client: httpx.AsyncClient,
) -> None:
    url = hub_url + "/webhooks/people"
    people.webhook_url = url
    person = people.create(_person(1))
    people.update(person["uid"], {"name": {"last": "Hook"}})
    other = people.create(_person(2))
    people.delete(other["uid"])

    async def applied() -> bool:
        items = {i["externalId"]: i for i in await all_contacts(client, include_deleted="true")}
        mine = items.get(person["uid"], {})
        gone = items.get(other["uid"])
        return mine.get("name") == "F1 Hook" and (gone is None or gone["deletedAt"] is not None)

    await eventually(applied, timeout=10)
    assert all(a.ok for a in people.outbox.attempts())
    body = json.dumps({"type": "person.updated", "event_id": "e1", "data": person}).encode()
    now = str(int(time.time()))
    secret = people_mod.WEBHOOK_SECRET
    async with httpx.AsyncClient() as http:

        async def post(headers: dict[str, str]) -> int:
            return (await http.post(url, content=body, headers=headers)).status_code

        forged = people_mod.sign("not-the-secret", body, now)
        assert await post({"X-People-Timestamp": now, "X-People-Signature": forged}) == 401
        stale = str(int(time.time()) - 3600)
        old = people_mod.sign(secret, body, stale)
        assert await post({"X-People-Timestamp": stale, "X-People-Signature": old}) == 401
        signed = people_mod.sign(secret, body, now)
        assert await post({"X-People-Signature": signed}) == 401  # no timestamp
        assert await post({"X-People-Timestamp": now, "X-People-Signature": signed}) == 200


async def test_users_propagate_to_the_nested_shape(
    people: PeopleSimulator, client: httpx.AsyncClient
) -> None:
    existing = people.create(_person(7, emails=[{"value": "old@example.com", "primary": True}]))
    await client.patch("/users/u1", json={"email": "old@example.com", "lastName": "Lovelace"})
    first = await synced(client, "u1")
    assert first["sync"]["crmContactId"] == existing["uid"]
    await client.patch("/users/u1", json={"email": "new@example.com", "lastName": None})
    second = await synced(client, "u1")
    assert second["sync"]["crmContactId"] == existing["uid"]
    person = people.people[existing["uid"]]
    assert people.primary_email(existing["uid"]) == "new@example.com"
    assert person["name"] == {"first": "F7", "last": None}
    await client.patch("/users/u2", json={"email": "fresh@example.com", "firstName": "Fresh"})
    created = (await synced(client, "u2"))["sync"]["crmContactId"]
    assert people.people[created]["name"] == {"first": "Fresh"}
    assert len(people.people) == 2


async def test_the_configured_rate_limit_headers_pace_the_budget(
    people: PeopleSimulator, outbound: Outbound, config: Config
) -> None:
    """``rate_limit_headers`` (``X-Quota-*`` over the configured 60 s window) reach the outbound
    budget: once the CRM says none are left, the hub does not send the next call (no 429); an API
    caller gets a 503 with the wait instead."""
    with people._lock:
        people.rate_limit = len(people._hits) + 2  # what the first sync used, and two more
    people.log.clear()
    crm = crm_client(outbound, config, "people", mode="request")
    for _ in range(2):
        assert await crm.get("nobody") is None
    with pytest.raises(TransientError) as refused:
        await crm.get("nobody")
    assert refused.value.retry_after is not None and refused.value.retry_after > 2
    assert [e["status"] for e in people.log.entries()] == [404, 404]  # the third never went
