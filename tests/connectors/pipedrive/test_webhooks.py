"""The Pipedrive webhooks v1 receiver inside the hub app, over HTTP: HTTP Basic auth, person
events logged and turned into ``contacts.refresh`` jobs (deduped across redeliveries), other
objects ignored; and the simulator's sender delivering to the hub on a real port.

Here the receiver is mounted on a test path of the app (same state, error handlers, database);
``test_hub.py`` reaches it through ``POST /webhooks/{connection}``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Request, Response
from pydantic import SecretStr
from sqlalchemy import select

from switchboard.config import Config, Settings
from switchboard.connectors.pipedrive.settings import PipedriveConnection
from switchboard.connectors.pipedrive.simulator import PipedriveSimulator
from switchboard.connectors.pipedrive.webhooks import (
    basic_auth_valid,
    person_events,
    receive_pipedrive,
)
from switchboard.contacts.tasks import EVENT_JOB
from switchboard.db import Database
from switchboard.deps import get_db
from switchboard.models import Job, WebhookDelivery
from tests.connectors.pipedrive.conftest import NAME, connection, hub_config
from tests.support import eventually, serve_in_loop

USER, PASSWORD = "hub", "s3cret-pass"
PATH = f"/test/pipedrive-webhooks/{NAME}"


@pytest.fixture
def conn(sim_url: str) -> PipedriveConnection:
    return connection(sim_url, webhook_user=USER, webhook_password=PASSWORD)


@pytest.fixture
def config(settings: Settings, conn: PipedriveConnection) -> Config:
    return hub_config(settings, conn)


@pytest.fixture
async def mounted(app: Any, config: Config) -> Any:
    async def endpoint(connection: str, request: Request) -> Response:
        conn = config.connection(connection)
        return await receive_pipedrive(request, connection, conn, get_db(request), config)

    app.add_api_route("/test/pipedrive-webhooks/{connection}", endpoint, methods=["POST"])
    return app


def auth(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def event(action: str, person_id: int, *, micros: int = 1_700_000_000_123_456, **extra: Any) -> Any:
    person = {"id": person_id, "name": "Ada Lovelace", "active_flag": action != "deleted"}
    return {
        "v": 1,
        "matches_filters": {"current": [], "previous": []},
        "meta": {
            "v": 1,
            "action": action,
            "object": "person",
            "id": person_id,
            "timestamp": micros // 1_000_000,
            "timestamp_micro": micros,
        },
        "current": None if action == "deleted" else person,
        "previous": person if action != "added" else None,
        "event": f"{action}.person",
        "retry": 0,
        **extra,
    }


async def jobs(db: Database) -> list[Job]:
    async with db.read_session() as session:
        return list((await session.scalars(select(Job).where(Job.kind == EVENT_JOB))).all())


async def deliveries(db: Database) -> list[WebhookDelivery]:
    async with db.read_session() as session:
        return list((await session.scalars(select(WebhookDelivery))).all())


async def test_a_person_event_becomes_a_refresh_job_once(
    mounted: Any, client: httpx.AsyncClient, db: Database
) -> None:
    body = event("updated", 42)
    response = await client.post(PATH, json=body, headers=auth())
    assert response.status_code == 200, response.text
    [job] = await jobs(db)
    assert job.payload["connection"] == NAME and job.payload["external_id"] == "42"
    assert job.payload["occurred_at"] == 1_700_000_000_123
    # Pipedrive's redelivery of the same event (retry counts up): logged, no second job.
    again = await client.post(PATH, json={**body, "retry": 1}, headers=auth())
    assert again.status_code == 200
    assert len(await jobs(db)) == 1
    assert sorted(d.outcome for d in await deliveries(db)) == ["accepted", "duplicate"]


async def test_deletions_and_merges_name_every_person_involved(
    mounted: Any, client: httpx.AsyncClient, db: Database
) -> None:
    assert (await client.post(PATH, json=event("deleted", 7), headers=auth())).status_code == 200
    merged = event("merged", 8, micros=1_700_000_001_000_000)
    merged["previous"] = {"id": 9, "name": "Ada Duplicate"}
    merged["current"] = {"id": 8, "name": "Ada Lovelace", "merge_what_id": 9}
    assert (await client.post(PATH, json=merged, headers=auth())).status_code == 200
    assert sorted(j.payload["external_id"] for j in await jobs(db)) == ["7", "8", "9"]


async def test_other_objects_are_acknowledged_and_ignored(
    mounted: Any, client: httpx.AsyncClient, db: Database
) -> None:
    deal = event("updated", 5)
    deal["meta"]["object"] = "deal"
    deal["event"] = "updated.deal"
    assert (await client.post(PATH, json=deal, headers=auth())).status_code == 200
    assert await jobs(db) == [] and await deliveries(db) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        auth(password="wrong"),
        auth(user="other"),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()},
    ],
)
async def test_wrong_credentials_are_refused(
    mounted: Any, client: httpx.AsyncClient, db: Database, headers: dict[str, str]
) -> None:
    response = await client.post(PATH, json=event("updated", 1), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert await jobs(db) == []
    assert [d.outcome for d in await deliveries(db)] == ["bad_signature"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"v": 2, "meta": {}}).encode(),
        json.dumps(event("updated", 1) | {"meta": {"object": "person"}}).encode(),
    ],
)
async def test_malformed_deliveries_are_bad_requests(
    mounted: Any, client: httpx.AsyncClient, db: Database, body: bytes
) -> None:
    response = await client.post(PATH, content=body, headers=auth())
    assert response.status_code == 400
    assert await jobs(db) == []


def test_basic_auth_check() -> None:
    user, password = SecretStr("u"), SecretStr("p:w")
    good = "Basic " + base64.b64encode(b"u:p:w").decode()
    assert basic_auth_valid(good, user, password)
    assert not basic_auth_valid(good.lower(), user, password)  # the base64 changed
    assert not basic_auth_valid("Basic " + base64.b64encode(b"u").decode(), user, password)
    assert not basic_auth_valid(None, user, password)
    assert not basic_auth_valid(
        "Basic " + base64.b64encode("ü:p:w".encode()).decode(), user, password
    )


def test_echo_forms_one_change_per_field_of_ours() -> None:
    """An ``updated.person`` becomes one event per changed field of ours (its new value), so
    each can be matched against the hub's own last write; other changes are read back."""
    key = "a" * 40
    before = {
        "id": 7,
        "name": "Ada Lovelace",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": [{"value": "ada@example.com", "primary": True}],
        "phone": [{"value": "", "primary": True}],
        "notes": "x",
        key: None,
    }
    after = {**before, "name": "Ada", "last_name": None, key: "gold", "notes": "y"}
    meta = {"action": "updated", "object": "person", "id": 7, "timestamp_micro": 5_000_000}

    def body(current: Any, previous: Any, action: str = "updated") -> bytes:
        return json.dumps(
            {"v": 1, "meta": {**meta, "action": action}, "current": current, "previous": previous}
        ).encode()

    events = person_events(body(after, before), {"plan": key})
    assert [(e.key, e.echo) for e in events] == [
        ("event:updated.person:7:5000000:lastName", ["changed", "lastName", None]),
        ("event:updated.person:7:5000000:plan", ["changed", "plan", "gold"]),
    ]
    [unmapped] = person_events(body(after, before))  # without the custom field: lastName only
    assert unmapped.echo == ["changed", "lastName", None]
    [other] = person_events(body({**before, "notes": "y"}, before))  # nothing of ours changed
    assert other.echo is None and other.key == "event:updated.person:7:5000000"
    [added] = person_events(body(after, None, "added"))
    assert added.echo == ["created", None, None]
    [deleted] = person_events(body(None, before, "deleted"))
    assert deleted.echo is None


@pytest.fixture
async def hub_url(mounted: Any) -> AsyncIterator[str]:
    async with serve_in_loop(mounted) as url:
        yield url


async def test_the_simulators_webhooks_reach_the_hub(
    hub_url: str, sim: PipedriveSimulator, db: Database
) -> None:
    sim.webhooks.configure(
        url=hub_url + PATH, http_auth_user=USER, http_auth_password=PASSWORD, retry_base_seconds=0
    )
    person = sim.store.create({"name": "Hook Person", "email": "hook@example.com"})
    sim.store.update(person["id"], {"name": "Hooked Person"})
    sim.store.delete(person["id"])

    async def three_delivered() -> bool:
        return sim.webhooks.outbox.stats()["delivered"] == 3

    await eventually(three_delivered)
    attempts = sim.webhooks.outbox.attempts()
    # Sent concurrently, as Pipedrive does: in any order.
    assert sorted(json.loads(a.body)["event"] for a in attempts) == [
        "added.person",
        "deleted.person",
        "updated.person",
    ]
    assert [d.outcome for d in await deliveries(db)] == ["accepted"] * 3
    [job] = await jobs(db)  # one contact: its events coalesce into one refresh
    assert job.payload["external_id"] == str(person["id"])


async def test_the_simulator_retries_a_refused_delivery(
    hub_url: str, sim: PipedriveSimulator, db: Database
) -> None:
    sim.webhooks.configure(
        url=hub_url + PATH, http_auth_user=USER, http_auth_password="wrong", retry_base_seconds=0
    )
    sim.store.create({"name": "Refused Person"})

    async def gave_up() -> bool:
        return sim.webhooks.outbox.stats()["gave_up"] == 1

    await eventually(gave_up)
    attempts = sim.webhooks.outbox.attempts()
    assert [(a.status, json.loads(a.body)["retry"]) for a in attempts] == [
        (401, 0),
        (401, 1),
        (401, 2),
    ]
    assert await jobs(db) == []


async def test_a_merge_in_pipedrive_refreshes_both_persons(
    hub_url: str, sim: PipedriveSimulator, sim_url: str, db: Database
) -> None:
    kept = sim.store.create({"name": "Ada Lovelace", "email": "ada@example.com"})
    dup = sim.store.create({"name": "Ada L", "email": "ada@work.example"})
    sim.webhooks.configure(url=hub_url + PATH, http_auth_user=USER, http_auth_password=PASSWORD)
    async with httpx.AsyncClient(base_url=sim_url) as control:
        merged = await control.post(
            f"/_sandbox/pipedrive/persons/{dup['id']}/merge", json={"into": kept["id"]}
        )
    assert merged.status_code == 200
    assert [e["value"] for e in merged.json()["email"]] == ["ada@example.com", "ada@work.example"]

    async def delivered() -> bool:
        return sim.webhooks.outbox.stats()["delivered"] == 1

    await eventually(delivered)
    [attempt] = sim.webhooks.outbox.attempts()
    assert json.loads(attempt.body)["event"] == "merged.person"
    assert sorted(j.payload["external_id"] for j in await jobs(db)) == sorted(
        [str(kept["id"]), str(dup["id"])]
    )
