"""Contact syncs: HubSpot (full list, incremental search, archived listing) and mapped CRMs.

Every page of contacts is stored in the same transaction as the cursor that moves past it, so a
run killed at any point resumes where the last committed page ended: no gap, and no duplicate
(pages are upserts, and the cursor never points before stored data).

HubSpot streams (``contact_cursors.stream``):

* ``full`` ``{"after", "started_ms"}`` — the list endpoint, 100 per page with the configured
  properties, following ``paging.next.after`` to the end. When it ends, the search cursor starts
  at the full run's start, so changes made during the full run are caught by the next run.
* ``search`` ``{"since_ms", "until_ms"?, "last_id"?}`` — changes through search: window
  ``lastmodifieddate`` from ``since_ms`` minus :data:`OVERLAP` (search indexing lags a few
  seconds) up to the run's start, sorted by ``hs_object_id``. Every page asks for
  ``hs_object_id GTE last_id + 1`` with ``after=0``: HubSpot's own restart past 10,000 results
  (whose offset window would answer 400), applied on every page because an offset shifts when a
  contact leaves the window mid-run (edited again after the run started), which would skip the
  contact that slid into the gap. So the 10,000 window is never reached either. Search has its
  own 5 requests/s budget.
* ``archived`` ``{"after", "started_ms"}`` while listing, ``{"done_ms"}`` after — HubSpot's
  search never shows deletions, so a run lists ``archived=true`` and stores tombstones: every
  run, or at most every ``archived_interval`` (webhooks report deletions sooner).

Mapped CRMs have no change feed: every run lists every page (``{"page", "seen"}``) and
tombstones the contacts it did not see, each confirmed missing by a ``GET`` first (a page shift
during the run must not delete a live contact).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.config import Connection, HubSpotConnection, MappedCrmConnection
from switchboard.connectors.crm import CrmContact
from switchboard.connectors.hubspot import HubSpotClient, from_record
from switchboard.connectors.mapped_crm import MappedCrmContacts
from switchboard.contacts import service
from switchboard.db import utcnow
from switchboard.syncs import SyncContext, SyncResult

OVERLAP = timedelta(seconds=60)
SEARCH_LIMIT = 200
FULL, SEARCH, ARCHIVED, LISTING = "full", "search", "archived", "listing"


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Counts:
    def __init__(self) -> None:
        self.pages = 0
        self.upserted = 0
        self.deleted = 0

    def result(self, **detail: Any) -> SyncResult:
        return SyncResult(
            pages=self.pages, upserted=self.upserted, deleted=self.deleted, detail=detail
        )


def interval(conn: Connection) -> timedelta | None:
    if isinstance(conn, HubSpotConnection | MappedCrmConnection):
        return conn.sync_interval
    return None


async def summary(session: AsyncSession, connection: str) -> dict[str, Any]:
    return await service.counts(session, connection)


# --- HubSpot ----------------------------------------------------------------------------------


def _custom(ctx: SyncContext) -> dict[str, str]:
    assert isinstance(ctx.connection, HubSpotConnection)
    return ctx.connection.custom_fields


async def sync_hubspot(ctx: SyncContext) -> SyncResult:
    conn = ctx.connection
    assert isinstance(conn, HubSpotConnection)
    client = HubSpotClient(ctx.outbound.client(ctx.name), mode="job")
    custom = list(conn.custom_fields.values())
    properties = list(dict.fromkeys([*conn.properties, *custom, "lastmodifieddate", "createdate"]))
    async with ctx.db.read_session() as session:
        state = await service.cursors(session, ctx.name)
    if ctx.full:
        state = {FULL: {"after": None, "started_ms": _now_ms()}}
        async with ctx.db.session() as session:
            await service.drop_cursors(session, ctx.name, [SEARCH, ARCHIVED])
            await service.save_cursor(session, ctx.name, FULL, state[FULL])
    counts = _Counts()
    if FULL in state or SEARCH not in state:
        mode = "full"
        await _hubspot_full(ctx, client, properties, state.get(FULL), counts)
    else:
        mode = "incremental"
        await _hubspot_search(ctx, client, properties, state[SEARCH], counts)
    archived = state.get(ARCHIVED) or {}
    listed_ms = archived.get("done_ms")
    due = (
        conn.archived_interval is None
        or listed_ms is None
        or _now_ms() - listed_ms >= conn.archived_interval.total_seconds() * 1000
    )
    if due or archived.get("after"):  # due, or an interrupted listing to finish
        await _hubspot_archived(ctx, client, properties, archived, counts)
    return counts.result(mode=mode, archived_listed=due or bool(archived.get("after")))


async def _hubspot_full(
    ctx: SyncContext,
    client: HubSpotClient,
    properties: list[str],
    cursor: dict[str, Any] | None,
    counts: _Counts,
) -> None:
    cursor = dict(cursor or {"after": None, "started_ms": _now_ms()})
    while True:
        page = await client.list_page(properties=properties, after=cursor.get("after"))
        contacts = [from_record(r, ctx.name, _custom(ctx)) for r in page["results"]]
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        async with ctx.db.session() as session:
            counts.upserted += await service.store(session, ctx.name, contacts)
            if after:
                cursor["after"] = after
                await service.save_cursor(session, ctx.name, FULL, cursor)
            else:
                await service.drop_cursors(session, ctx.name, [FULL])
                await service.save_cursor(
                    session, ctx.name, SEARCH, {"since_ms": cursor["started_ms"]}
                )
        counts.pages += 1
        ctx.progress(f"full: {counts.pages} pages, {counts.upserted} contacts stored")
        if not after:
            return


async def _hubspot_search(
    ctx: SyncContext,
    client: HubSpotClient,
    properties: list[str],
    cursor: dict[str, Any],
    counts: _Counts,
) -> None:
    cursor = dict(cursor)
    if "until_ms" not in cursor:  # a new window; a resumed one keeps its bounds
        cursor.update(until_ms=_now_ms(), last_id=0)
    since = int(cursor["since_ms"]) - int(OVERLAP.total_seconds() * 1000)
    while True:
        filters: list[dict[str, Any]] = [
            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since)},
            {
                "propertyName": "lastmodifieddate",
                "operator": "LTE",
                "value": str(cursor["until_ms"]),
            },
        ]
        if cursor["last_id"]:
            filters.append(
                {
                    "propertyName": "hs_object_id",
                    "operator": "GTE",
                    "value": str(int(cursor["last_id"]) + 1),
                }
            )
        page = await client.search_page(
            filters=filters, properties=properties, after=0, limit=SEARCH_LIMIT
        )
        contacts = [from_record(r, ctx.name, _custom(ctx)) for r in page["results"]]
        done = "paging" not in page or not contacts
        async with ctx.db.session() as session:
            counts.upserted += await service.store(session, ctx.name, contacts)
            if done:
                await service.save_cursor(
                    session, ctx.name, SEARCH, {"since_ms": cursor["until_ms"]}
                )
            else:
                cursor["last_id"] = max(int(c.external_id) for c in contacts)
                await service.save_cursor(session, ctx.name, SEARCH, cursor)
        counts.pages += 1
        ctx.progress(f"incremental: {counts.pages} pages, {counts.upserted} contacts stored")
        if done:
            return


async def _hubspot_archived(
    ctx: SyncContext,
    client: HubSpotClient,
    properties: list[str],
    cursor: dict[str, Any] | None,
    counts: _Counts,
) -> None:
    after = (cursor or {}).get("after")
    started_ms = (cursor or {}).get("started_ms") or _now_ms()
    while True:
        page = await client.list_page(properties=properties, after=after, archived=True)
        contacts = [from_record(r, ctx.name, _custom(ctx)) for r in page["results"]]
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        async with ctx.db.session() as session:
            counts.deleted += await service.store(session, ctx.name, contacts, deleted=True)
            # In progress: where to resume. Done: when it started (archived_interval counts
            # from there: deletions after that start may not have been seen).
            done = {"done_ms": started_ms}
            progress = {"after": after, "started_ms": started_ms}
            await service.save_cursor(session, ctx.name, ARCHIVED, progress if after else done)
        counts.pages += 1
        if not after:
            return


# --- mapped CRMs ------------------------------------------------------------------------------


async def sync_mapped(ctx: SyncContext) -> SyncResult:
    conn = ctx.connection
    assert isinstance(conn, MappedCrmConnection)
    crm = MappedCrmContacts(ctx.outbound.client(ctx.name), conn, mode="job")
    async with ctx.db.read_session() as session:
        state = {} if ctx.full else await service.cursors(session, ctx.name)
    cursor = state.get(LISTING) or {"page": crm.client.first_page, "seen": []}
    seen: set[str] = set(cursor["seen"])
    page = cursor["page"]  # a page number, offset, cursor or URL: the pagination's token
    counts = _Counts()
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
            session, ctx.name, [_deleted_now(c) for c in gone], deleted=True
        )
        await service.drop_cursors(session, ctx.name, [LISTING])
    return counts.result(mode="full", seen=len(seen))


def _deleted_now(contact: CrmContact) -> CrmContact:
    """A tombstone stamped now: the CRM gives no deletion time, and the hub saw it gone now."""
    return CrmContact(
        external_id=contact.external_id,
        fields=contact.fields,
        created_at=contact.created_at,
        updated_at=utcnow(),
        archived=True,
        raw=contact.raw,
    )
