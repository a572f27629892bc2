"""``GET /changes``: every committed change, in commit order, exactly once."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import insert, update

from switchboard.changes import service
from switchboard.changes.kinds import TYPES
from switchboard.connectors.crm import CrmContact
from switchboard.contacts import service as contacts
from switchboard.db import Database, utcnow
from switchboard.models import ChangeAttempt, ChangeEvent
from tests.changes.conftest import all_changes
from tests.support import Backend


@pytest.fixture
def runtime_enabled() -> bool:
    return False


async def test_own_writes_become_contact_events(client: httpx.AsyncClient) -> None:
    r = await client.post("/contacts", json={"email": "ada@example.com", "firstName": "Ada"})
    assert r.status_code == 201, r.text
    hub_id = r.json()["id"]
    r = await client.patch(f"/contacts/{hub_id}", json={"lastName": "Lovelace"})
    assert r.status_code == 200, r.text
    r = await client.delete(f"/contacts/{hub_id}")
    assert r.status_code == 204, r.text

    events = [e for e in await all_changes(client) if e["subject"] == f"contact:{hub_id}"]
    assert [e["type"] for e in events] == ["contact.created", "contact.updated", "contact.deleted"]
    created, updated, _ = events
    assert created["data"]["contact"]["email"] == "ada@example.com"
    assert created["connection"] == "hubspot"
    assert updated["data"]["changed"] == ["lastName", "name"]
    assert updated["data"]["contact"]["lastName"] == "Lovelace"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    one = await client.get(f"/changes/{created['id']}")
    assert one.status_code == 200 and one.json() == created
    only = await all_changes(client, type="contact.del*")
    assert only == []  # a wildcard is `prefix.*`, nothing else
    deleted = await all_changes(client, type="contact.deleted")
    assert [e["id"] for e in deleted] == [events[2]["id"]]


async def test_a_rolled_back_change_emits_nothing(db: Database, client: httpx.AsyncClient) -> None:
    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await service.emit(session, "sync.failed", "sync:x", {"run": {}})
            raise RuntimeError("the change fails")
    async with db.session() as session:
        await service.emit(session, "sync.succeeded", "sync:x", {"run": {}})
    assert [e["type"] for e in await all_changes(client)] == ["sync.succeeded"]


async def test_a_late_commit_is_not_skipped_by_a_reader_that_paged_past_later_events(
    db: Database, client: httpx.AsyncClient, backend: Backend
) -> None:
    """Writer A emits first and commits last; writer B emits and commits in between. A reader
    that saw B's event and moved its cursor past it still gets A's on its next page."""
    a_emitted, release_a, b_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def writer_a() -> None:
        async with db.session() as session:
            await service.emit(session, "sync.succeeded", "sync:a", {"run": {"w": "a"}})
            a_emitted.set()
            await release_a.wait()

    async def writer_b() -> None:
        await a_emitted.wait()
        async with db.session() as session:
            await service.emit(session, "sync.succeeded", "sync:b", {"run": {"w": "b"}})
        b_done.set()

    a, b = asyncio.create_task(writer_a()), asyncio.create_task(writer_b())
    await a_emitted.wait()
    if backend.name == "postgresql":
        await asyncio.wait_for(b_done.wait(), 10)  # B commits while A is still open
    first = (await client.get("/changes", params={"after": 0})).json()
    release_a.set()
    await asyncio.gather(a, b)
    second = (await client.get("/changes", params={"after": first["next_after"]})).json()
    seen = [e["subject"] for e in first["items"] + second["items"]]
    assert sorted(seen) == ["sync:a", "sync:b"]  # each exactly once
    if backend.name == "postgresql":
        # The case a sequence assigned at insert would get wrong: B was seen first.
        assert [e["subject"] for e in first["items"]] == ["sync:b"]
        assert [e["subject"] for e in second["items"]] == ["sync:a"]
    assert all(e["seq"] > first["next_after"] for e in second["items"])


async def test_prune_removes_events_and_attempts_past_the_retention(
    db: Database, client: httpx.AsyncClient
) -> None:
    async with db.session() as session:
        await service.emit(session, "sync.failed", "sync:old", {"run": {}})
    async with db.session() as session:
        await service.emit(session, "sync.succeeded", "sync:new", {"run": {}})
    old = utcnow() - timedelta(days=31)
    async with db.session() as session:
        await session.execute(
            update(ChangeEvent).where(ChangeEvent.subject == "sync:old").values(created_at=old)
        )
        await session.execute(
            insert(ChangeAttempt),
            [
                {
                    "event_id": 1,
                    "subscription_id": "s",
                    "attempt": 1,
                    "outcome": "failed",
                    "created_at": when,
                }
                for when in (old, utcnow())
            ],
        )
    async with db.session() as session:
        pruned = await service.prune(
            session, older_than=service.retention_cutoff(timedelta(days=30))
        )
    assert pruned == (1, 1)
    assert [e["subject"] for e in await all_changes(client)] == ["sync:new"]


async def test_a_rolled_back_savepoint_takes_only_its_own_events(
    db: Database, client: httpx.AsyncClient
) -> None:
    async with db.session() as session:
        await service.emit(session, "sync.succeeded", "sync:kept", {"run": {}})
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                await service.emit(session, "sync.failed", "sync:undone", {"run": {}})
                raise RuntimeError("the savepoint's change fails")
        await service.emit(session, "sync.succeeded", "sync:after", {"run": {}})
    assert [e["subject"] for e in await all_changes(client)] == ["sync:kept", "sync:after"]


async def test_every_event_type_is_documented_in_the_openapi_webhooks(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    assert set(document["webhooks"]) == set(TYPES)
    operation = document["webhooks"]["contact.updated"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"id", "seq", "type", "subject", "timestamp", "data"} <= set(schema["properties"])


async def test_a_reader_paging_during_concurrent_writers_sees_every_event_once(
    db: Database, client: httpx.AsyncClient
) -> None:
    """Eight writers commit at random moments (each holding its transaction open a while after
    emitting) while a reader pages with ``after``: it ends with every event exactly once."""
    rng = random.Random(7)
    written: list[str] = []

    async def writer(w: int) -> None:
        for t in range(6):
            async with db.session() as session:
                subjects = [f"sync:{w}-{t}-{i}" for i in range(3)]
                await service.emit_many(
                    session, [service.NewEvent("sync.succeeded", s, {}) for s in subjects]
                )
                await asyncio.sleep(rng.random() * 0.02)  # commits late, sometimes
            written.extend(subjects)

    seen: list[str] = []
    after = 0
    writers = asyncio.gather(*(writer(w) for w in range(8)))
    while True:
        finished = writers.done()  # before the read: an empty page after it is the end
        page = (await client.get("/changes", params={"after": after, "limit": 7})).json()
        seen += [e["subject"] for e in page["items"]]
        after = page["next_after"]
        if finished and not page["items"]:
            break
        await asyncio.sleep(0.001)
    await writers
    assert len(seen) == len(set(seen)) == len(written) == 8 * 6 * 3
    assert set(seen) == set(written)


async def test_two_writers_storing_one_new_contact_make_one_created_event(
    db: Database, client: httpx.AsyncClient
) -> None:
    """A sync page and the API's own write store the same new contact at once: one
    ``contact.created``, then one ``contact.updated`` (not two creations)."""
    now = utcnow()
    first = CrmContact("42", {"email": "twice@example.com", "firstName": "A"}, now, now, False, {})
    later = now + timedelta(seconds=1)
    second = CrmContact(
        "42", {"email": "twice@example.com", "firstName": "B"}, now, later, False, {}
    )
    release = asyncio.Event()
    stored = asyncio.Event()

    async def write(contact: CrmContact, hold: bool) -> None:
        async with db.session() as session:
            await contacts.store(session, "hubspot", [contact])
            if hold:
                stored.set()
                await release.wait()  # the transaction stays open

    a = asyncio.create_task(write(first, hold=True))
    await stored.wait()
    b = asyncio.create_task(write(second, hold=False))
    await asyncio.sleep(0.3)  # B reaches its store (and waits) while A is open
    release.set()
    await asyncio.gather(a, b)
    events = await all_changes(client)
    assert [e["type"] for e in events] == ["contact.created", "contact.updated"]
    assert events[1]["data"]["changed"] == ["firstName", "name"]
