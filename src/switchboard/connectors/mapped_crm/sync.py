"""A mapped CRM's contact sync.

Mapped CRMs have no change feed: every run lists every page (``{"page", "seen"}``) and
tombstones the contacts it did not see, each confirmed missing by a ``GET`` first (a page shift
during the run must not delete a live contact).
"""

from __future__ import annotations

from datetime import timedelta

from switchboard.connectors.crm import CrmContact
from switchboard.connectors.mapped_crm.client import MappedCrmContacts
from switchboard.connectors.mapped_crm.settings import MappedCrmConnection
from switchboard.contacts import service
from switchboard.contacts.sync import Counts, deleted_now
from switchboard.settings import ConnectionSettings
from switchboard.syncs import SyncContext, SyncResult

LISTING = "listing"


def interval(conn: ConnectionSettings) -> timedelta | None:
    return conn.sync_interval if isinstance(conn, MappedCrmConnection) else None


async def sync(ctx: SyncContext) -> SyncResult:
    conn = ctx.connection
    assert isinstance(conn, MappedCrmConnection)
    crm = MappedCrmContacts(ctx.outbound.client(ctx.name), conn, mode="job")
    async with ctx.db.read_session() as session:
        state = {} if ctx.full else await service.cursors(session, ctx.name)
    cursor = state.get(LISTING) or {"page": crm.client.first_page, "seen": []}
    seen: set[str] = set(cursor["seen"])
    page = cursor["page"]  # a page number, offset, cursor or URL: the pagination's token
    counts = Counts()
    while True:
        records, next_page = await crm.client.list_page(page=page)
        contacts = [crm.map.from_vendor(r) for r in records]
        seen.update(c.external_id for c in contacts)
        async with ctx.db.session() as session:
            counts.upserted += await service.store(session, ctx.name, contacts)
            if next_page is not None:
                await service.save_cursor(
                    session, ctx.name, LISTING, {"page": next_page, "seen": sorted(seen)}
                )
        counts.pages += 1
        ctx.progress(f"{counts.pages} pages, {counts.upserted} contacts stored")
        if next_page is None:
            break
        page = next_page
    async with ctx.db.read_session() as session:
        missing = sorted(await service.live_external_ids(session, ctx.name) - seen)
    found: list[CrmContact] = []
    gone: list[CrmContact] = []
    async with ctx.db.read_session() as session:
        stored = {m: await service.by_external(session, ctx.name, m) for m in missing}
    for external_id in missing:
        current = await crm.get(external_id)
        if current is not None:
            found.append(current)
        elif (row := stored[external_id]) is not None:
            gone.append(service.as_crm(row))
    async with ctx.db.session() as session:
        counts.upserted += await service.store(session, ctx.name, found)
        counts.deleted += await service.store(
            session, ctx.name, [deleted_now(c) for c in gone], deleted=True
        )
        await service.drop_cursors(session, ctx.name, [LISTING])
    return counts.result(mode="full", seen=len(seen))
