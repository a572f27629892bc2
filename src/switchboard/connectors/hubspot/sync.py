"""HubSpot's contact sync: full list, incremental search, archived listing.

Streams (``contact_cursors.stream``):

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
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from switchboard.connectors.hubspot.client import HubSpotClient
from switchboard.connectors.hubspot.mapping import from_record
from switchboard.connectors.hubspot.settings import HubSpotConnection
from switchboard.contacts import service
from switchboard.contacts.sync import Counts, now_ms
from switchboard.settings import ConnectionSettings
from switchboard.syncs import SyncContext, SyncResult

OVERLAP = timedelta(seconds=60)
SEARCH_LIMIT = 200
FULL, SEARCH, ARCHIVED = "full", "search", "archived"


def interval(conn: ConnectionSettings) -> timedelta | None:
    return conn.sync_interval if isinstance(conn, HubSpotConnection) else None


def _custom(ctx: SyncContext) -> dict[str, str]:
    assert isinstance(ctx.connection, HubSpotConnection)
    return ctx.connection.custom_fields


async def sync(ctx: SyncContext) -> SyncResult:
    conn = ctx.connection
    assert isinstance(conn, HubSpotConnection)
    client = HubSpotClient(ctx.outbound.client(ctx.name), mode="job")
    custom = list(conn.custom_fields.values())
    properties = list(dict.fromkeys([*conn.properties, *custom, "lastmodifieddate", "createdate"]))
    async with ctx.db.read_session() as session:
        state = await service.cursors(session, ctx.name)
    if ctx.full:
        state = {FULL: {"after": None, "started_ms": now_ms()}}
        async with ctx.db.session() as session:
            await service.drop_cursors(session, ctx.name, [SEARCH, ARCHIVED])
            await service.save_cursor(session, ctx.name, FULL, state[FULL])
    counts = Counts()
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
        or now_ms() - listed_ms >= conn.archived_interval.total_seconds() * 1000
    )
    if due or archived.get("after"):  # due, or an interrupted listing to finish
        await _hubspot_archived(ctx, client, properties, archived, counts)
    return counts.result(mode=mode, archived_listed=due or bool(archived.get("after")))


async def _hubspot_full(
    ctx: SyncContext,
    client: HubSpotClient,
    properties: list[str],
    cursor: dict[str, Any] | None,
    counts: Counts,
) -> None:
    cursor = dict(cursor or {"after": None, "started_ms": now_ms()})
    custom = _custom(ctx)
    while True:
        page = await client.list_page(properties=properties, after=cursor.get("after"))
        contacts = [from_record(r, ctx.name, custom) for r in page["results"]]
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
    counts: Counts,
) -> None:
    cursor = dict(cursor)
    if "until_ms" not in cursor:  # a new window; a resumed one keeps its bounds
        cursor.update(until_ms=now_ms(), last_id=0)
    since = int(cursor["since_ms"]) - int(OVERLAP.total_seconds() * 1000)
    custom = _custom(ctx)
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
        contacts = [from_record(r, ctx.name, custom) for r in page["results"]]
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
    counts: Counts,
) -> None:
    after = (cursor or {}).get("after")
    started_ms = (cursor or {}).get("started_ms") or now_ms()
    custom = _custom(ctx)
    while True:
        page = await client.list_page(properties=properties, after=after, archived=True)
        contacts = [from_record(r, ctx.name, custom) for r in page["results"]]
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
