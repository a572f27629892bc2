"""The event store: what a fetched feed changes, written once per changed plan.

Decisions (``shared/providers/FEVER.md``): a plan is ``(connection, base_plan_id, plan_id)``
and its public id is the UUIDv5 of that triple; every valid plan is kept, offline ones too,
and never deleted (a plan that leaves the feed keeps its last values, ``in_feed`` false);
``ever_online`` is sticky; a row is written only when its content hash changed (or it came
back), so a fetch of an unchanged feed writes nothing but the feed's own state.
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.config import XmlFeedConnection
from switchboard.connectors.xml_feed import FeedClient, FeedParser, FeedPlan, NotAFeed, ParsedFeed
from switchboard.db import insert, utcnow
from switchboard.errors import AppError, TerminalError
from switchboard.events import metrics
from switchboard.events.index import invalidate
from switchboard.events.versions import bump_version
from switchboard.jobs import RetryLater
from switchboard.models import EventPlan, FeedState
from switchboard.syncs import SyncContext, SyncResult

log = structlog.get_logger("switchboard.events")

NAMESPACE = uuid.UUID("5f0e4d2c-8a61-5c3b-9e7d-1a2b3c4d5e6f")
"""Namespace of plan ids. Never change it: ids are public and must stay stable."""
_BATCH = 1000


class FeedRejected(TerminalError):
    """The provider answered with something that is not a feed; nothing was changed."""

    status_code = 502


def plan_uuid(connection: str, base_plan_id: str, plan_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{connection}\x1f{base_plan_id}\x1f{plan_id}"))


def provider_zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TerminalError(f"unknown time zone {name!r}") from None


def _instant(value: datetime, zone: tzinfo) -> tuple[str, datetime]:
    """The provider's wall-clock text and the UTC instant of a feed time."""
    if value.tzinfo is None:
        local, instant = value, value.replace(tzinfo=zone).astimezone(UTC)
    else:
        local, instant = value.astimezone(zone).replace(tzinfo=None), value.astimezone(UTC)
    return local.isoformat(timespec="seconds"), instant


def _stamp(value: datetime | None, zone: tzinfo) -> str | None:
    return None if value is None else _instant(value, zone)[0]


def plan_values(connection: str, plan: FeedPlan, zone: tzinfo) -> dict[str, Any]:
    """The stored columns of one plan (without the bookkeeping ones), and its content hash."""
    starts_local, starts_at = _instant(plan.starts, zone)
    ends_local, ends_at = _instant(plan.ends, zone)
    values: dict[str, Any] = {
        "id": plan_uuid(connection, plan.base_plan_id, plan.plan_id),
        "connection": connection,
        "base_plan_id": plan.base_plan_id,
        "plan_id": plan.plan_id,
        "title": plan.title,
        "sell_mode": plan.sell_mode,
        "organizer_company_id": plan.organizer_company_id,
        "starts_local": starts_local,
        "ends_local": ends_local,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "sell_from": _stamp(plan.sell_from, zone),
        "sell_to": _stamp(plan.sell_to, zone),
        "sold_out": plan.sold_out,
        "zones": plan.zones,
        "capacity": plan.capacity,
        "min_price": plan.min_price,
        "max_price": plan.max_price,
    }
    digest = hashlib.blake2b(repr(sorted(values.items())).encode(), digest_size=16)
    values["content_hash"] = digest.hexdigest()
    return values


@dataclass
class StoreResult:
    plans: int = 0
    written: int = 0
    inserted: int = 0
    gone: int = 0
    version: int | None = None
    skipped: Counter[str] = field(default_factory=Counter)


async def store_feed(
    session: AsyncSession,
    connection: str,
    feed: ParsedFeed,
    *,
    zone: tzinfo,
    now: datetime,
    previous_seen: datetime | None,
) -> StoreResult:
    """Apply a parsed document to the store in the caller's transaction."""
    existing = {
        row.id: row
        for row in (
            await session.execute(
                select(
                    EventPlan.id, EventPlan.content_hash, EventPlan.ever_online, EventPlan.in_feed
                ).where(EventPlan.connection == connection)
            )
        ).all()
    }
    result = StoreResult(plans=len(feed.plans), skipped=feed.skipped)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for plan in feed.plans:
        values = plan_values(connection, plan, zone)
        seen.add(values["id"])
        old = existing.get(values["id"])
        online = plan.sell_mode == "online" or (old is not None and old.ever_online)
        if (
            old is not None
            and old.in_feed
            and old.content_hash == values["content_hash"]
            and old.ever_online == online
        ):
            continue
        values.update(
            ever_online=online,
            in_feed=True,
            first_seen_at=now,
            last_seen_at=now,
            changed_at=now,
        )
        rows.append(values)
        result.inserted += old is None
    gone = [plan_id for plan_id, row in existing.items() if row.in_feed and plan_id not in seen]
    if rows:
        result.version = version = await bump_version(session)
        stmt = insert(session, EventPlan)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={
                name: stmt.excluded[name] for name in rows[0] if name not in ("id", "first_seen_at")
            }
            | {"version": stmt.excluded.version},
        )
        for start in range(0, len(rows), _BATCH):
            batch = [{**row, "version": version} for row in rows[start : start + _BATCH]]
            await session.execute(stmt, batch)
        result.written = len(rows)
    # A plan that left the feed keeps its values; search does not change, so no version bump.
    for start in range(0, len(gone), _BATCH):
        await session.execute(
            update(EventPlan)
            .where(EventPlan.id.in_(gone[start : start + _BATCH]))
            .values(in_feed=False, last_seen_at=previous_seen or now)
            .execution_options(synchronize_session=False)
        )
    result.gone = len(gone)
    return result


async def _state(session: AsyncSession, connection: str) -> FeedState | None:
    return await session.get(FeedState, connection)


async def _save_state(session: AsyncSession, connection: str, **values: Any) -> None:
    now = utcnow()
    stmt = insert(session, FeedState).values(connection=connection, updated_at=now, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["connection"], set_={**values, "updated_at": now}
        )
    )


async def sync_feed(ctx: SyncContext) -> SyncResult:
    """One fetch of an ``xml_feed`` connection into the store (the syncer's ``run``)."""
    conn = ctx.connection
    assert isinstance(conn, XmlFeedConnection)
    name = ctx.name
    zone = provider_zone(conn.timezone)
    async with ctx.db.read_session() as session:
        state = await _state(session, name)
    use_validators = state is not None and not ctx.full
    client = FeedClient(ctx.outbound.client(name), conn.url)
    ctx.progress(f"{name}: fetching {conn.url}")
    try:
        async with client.fetch(
            etag=state.etag if use_validators and state else None,
            last_modified=state.last_modified if use_validators and state else None,
            mode="job" if ctx.in_job else "request",
        ) as fetched:
            if fetched.not_modified:
                document = None
            else:
                ctx.progress(f"{name}: parsing the document as it arrives")
                document = await _read_document(fetched.chunks)
    except (AppError, RetryLater):
        metrics.INGESTS.labels(name, "provider_error").inc()
        raise
    now = utcnow()
    if document is None:
        async with ctx.db.session() as session:
            await _save_state(session, name, last_success_at=now)
        metrics.INGESTS.labels(name, "not_modified").inc()
        return SyncResult(pages=1, detail={"not_modified": True})
    digest, size, parsed = document
    if use_validators and state is not None and state.document_hash == digest:
        async with ctx.db.session() as session:
            await _save_state(
                session,
                name,
                last_success_at=now,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
            )
        metrics.INGESTS.labels(name, "unchanged").inc()
        return SyncResult(pages=1, detail={"unchanged": True, "bytes": size})
    if isinstance(parsed, NotAFeed):
        metrics.INGESTS.labels(name, "not_a_feed").inc()
        raise FeedRejected(
            f"{name}: not a feed document ({parsed}; {size} bytes, "
            f"content-type {fetched.content_type or 'none'})"
        )
    feed = parsed
    ctx.progress(f"{name}: {len(feed.plans):,} plans, {feed.skipped_total:,} skipped; storing")
    async with ctx.db.session() as session:
        stored = await store_feed(
            session,
            name,
            feed,
            zone=zone,
            now=now,
            previous_seen=state.last_success_at if state is not None else None,
        )
        await _save_state(
            session,
            name,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            document_hash=digest,
            last_success_at=now,
        )
    if stored.version is not None:
        invalidate(ctx.db)  # this process reads its own writes at once; others within ~250 ms
    metrics.INGESTS.labels(name, "stored").inc()
    metrics.PLANS_WRITTEN.labels(name).inc(stored.written)
    metrics.PLANS_IN_FEED.labels(name).set(stored.plans)
    for reason, count in feed.skipped.items():
        metrics.PLANS_SKIPPED.labels(name, reason).inc(count)
    detail: dict[str, Any] = {
        "dialect": feed.dialect,
        "bytes": size,
        "plans": stored.plans,
        "inserted": stored.inserted,
        "unchanged": stored.plans - stored.written,
        "left_feed": stored.gone,
        "version": stored.version,
    }
    if feed.skipped:
        detail["skipped_reasons"] = dict(feed.skipped)
        detail["skipped_examples"] = feed.examples[:5]
    return SyncResult(
        pages=1,
        upserted=stored.written,
        deleted=0,
        skipped=feed.skipped_total,
        errors=0,
        detail=detail,
    )


async def _read_document(
    chunks: AsyncIterator[bytes],
) -> tuple[str, int, ParsedFeed | NotAFeed]:
    """Hash and parse the body as it arrives: memory stays bounded by a few chunks, not the
    document. Parsing is CPU-bound, so it runs off the event loop (the API keeps answering
    during a large ingest) — in one thread for the whole document, because an lxml parser must
    stay on the thread that created it (libxml2 keeps per-thread state). Returns the digest, the
    size, and the parsed feed or why it is not one (an identical document is skipped by digest).
    """
    pending: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
    parsing = asyncio.get_running_loop().run_in_executor(None, _parse_queue, pending)
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            await _put(pending, chunk)
    finally:
        await _put(pending, None)  # always: the parsing thread must finish
        parsed = await parsing
    return digest.hexdigest(), size, parsed


async def _put(pending: queue.Queue[bytes | None], item: bytes | None) -> None:
    try:
        pending.put_nowait(item)
    except queue.Full:
        await asyncio.to_thread(pending.put, item)


def _parse_queue(pending: queue.Queue[bytes | None]) -> ParsedFeed | NotAFeed:
    parser = FeedParser()
    problem: NotAFeed | None = None
    while (chunk := pending.get()) is not None:
        if problem is None:
            try:
                parser.feed(chunk)
            except NotAFeed as exc:
                problem = exc  # keep draining: the reader must never block on a full queue
    if problem is not None:
        return problem
    try:
        return parser.close()
    except NotAFeed as exc:
        return exc


async def summary(session: AsyncSession, connection: str) -> dict[str, Any]:
    """The store's counts for ``GET /connections/{name}``."""
    stored, searchable, in_feed = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(EventPlan.ever_online.is_(True)),
                func.count().filter(EventPlan.in_feed.is_(True)),
            ).where(EventPlan.connection == connection)
        )
    ).one()
    state = await _state(session, connection)
    return {
        "plans_stored": stored,
        "plans_searchable": searchable,
        "plans_in_feed": in_feed,
        "feed_fetched_at": state.last_success_at.isoformat()
        if state is not None and state.last_success_at
        else None,
    }
