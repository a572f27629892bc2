"""The Pipedrive persons sync: a full pass every run, deletions found by what the pass missed.

API v1 lists active persons only, by offset (``start``/``limit``, sorted by id). Every page is
stored in the same transaction as the cursor that moves past it (stream :data:`STREAM`,
``{"start", "seen"}``), so a run killed anywhere resumes after its last committed page. When the
pass ends, each stored live person it did not see is read once: Pipedrive answers a deleted
person with ``active_flag`` false while it keeps it (its ``update_time`` is when it was deleted),
and 404 after; either way it is stored as deleted, while one still active (an offset shifted by a
deletion during the pass) is stored as it is. A person added during the pass after its page was
read is seen by the next run. Pages are upserts that never replace newer data, so runs are
idempotent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from switchboard.connectors.crm import CrmContact
from switchboard.connectors.pipedrive.client import PipedriveClient
from switchboard.connectors.pipedrive.mapping import from_person
from switchboard.connectors.pipedrive.settings import PipedriveConnection
from switchboard.contacts import service
from switchboard.contacts.sync import deleted_now
from switchboard.syncs.registry import SyncContext, SyncResult

STREAM = "persons"


def interval(conn: Any) -> timedelta | None:
    return conn.sync_interval if isinstance(conn, PipedriveConnection) else None


async def sync_persons(ctx: SyncContext) -> SyncResult:
    conn: Any = ctx.connection
    if not isinstance(conn, PipedriveConnection):
        raise TypeError(f"{ctx.name} is not a Pipedrive connection")
    client = PipedriveClient(ctx.outbound.client(ctx.name), conn, mode="job")
    async with ctx.db.read_session() as session:
        state = {} if ctx.full else await service.cursors(session, ctx.name)
    cursor = state.get(STREAM) or {"start": 0, "seen": []}
    seen: set[str] = {str(s) for s in cursor.get("seen") or []}
    start: int | None = int(cursor.get("start") or 0)
    pages = upserted = deleted = 0
    while start is not None:
        persons, next_start = await client.list_page(start=start, limit=conn.page_size)
        contacts = [from_person(p, ctx.name, conn.custom_fields) for p in persons]
        seen.update(c.external_id for c in contacts)
        async with ctx.db.session() as session:
            upserted += await service.store(session, ctx.name, contacts)
            if next_start is not None:
                await service.save_cursor(
                    session, ctx.name, STREAM, {"start": next_start, "seen": sorted(seen)}
                )
        pages += 1
        ctx.progress(f"{pages} pages, {upserted} persons stored")
        start = next_start
    async with ctx.db.read_session() as session:
        missing = sorted(await service.live_external_ids(session, ctx.name) - seen)
        stored = {m: await service.by_external(session, ctx.name, m) for m in missing}
    live: list[CrmContact] = []
    gone: list[CrmContact] = []
    for external_id in missing:
        person = await client.get(person_id=external_id)
        if person is not None:
            contact = from_person(person, ctx.name, conn.custom_fields)
            (gone if contact.archived else live).append(contact)
        elif (row := stored[external_id]) is not None:
            gone.append(deleted_now(service.as_crm(row)))
    async with ctx.db.session() as session:
        upserted += await service.store(session, ctx.name, live)
        deleted += await service.store(session, ctx.name, gone, deleted=True)
        await service.drop_cursors(session, ctx.name, [STREAM])
    return SyncResult(
        pages=pages,
        upserted=upserted,
        deleted=deleted,
        detail={"mode": "full", "seen": len(seen), "confirmed_missing": len(missing)},
    )
