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
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from sqlalchemy import (
    BigInteger,
    and_,
    delete,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from switchboard.changes import kinds as changes
from switchboard.connectors.xml_feed import (
    FeedClient,
    FeedParser,
    FeedPlan,
    NotAFeed,
    ParsedFeed,
    duplicate_message,
    skip,
)
from switchboard.connectors.xml_feed.parser import MAX_EXAMPLES
from switchboard.connectors.xml_feed.settings import XmlFeedConnection
from switchboard.db import Database, UTCDateTime, insert, utcnow
from switchboard.errors import AppError, TerminalError
from switchboard.events import metrics
from switchboard.events.index import invalidate
from switchboard.events.versions import bump_version
from switchboard.jobs import RetryLater
from switchboard.models import EventPlan, EventPlanStaging, FeedState
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


class _Stager:
    """Writes the plans of the document being read to ``event_plan_staging`` in bounded chunks
    (one short transaction each, so other writers are not held up during a long download).

    A plan that appears twice in the document is a ``duplicate`` skip; its last occurrence wins
    (within a chunk by the dictionary, across chunks by the upsert).
    """

    def __init__(self, db: Database, connection: str) -> None:
        self.db = db
        self.connection = connection
        self.pending: dict[str, dict[str, Any]] = {}
        self.skipped: Counter[str] = Counter()
        self.examples: list[str] = []

    def add(self, rows: list[dict[str, Any]]) -> None:
        for values in rows:
            if values["id"] in self.pending:
                self._duplicate(values)
            self.pending[values["id"]] = values

    def _duplicate(self, values: dict[str, Any]) -> None:
        message = duplicate_message(values["base_plan_id"], values["plan_id"])
        skip(self.skipped, self.examples, "duplicate", message)

    async def flush(self) -> None:
        if not self.pending:
            return
        rows, self.pending = list(self.pending.values()), {}
        async with self.db.session() as session:
            for start in range(0, len(rows), _BATCH):
                batch = rows[start : start + _BATCH]
                staged = await session.scalars(
                    select(EventPlanStaging.id).where(
                        EventPlanStaging.connection == self.connection,
                        EventPlanStaging.id.in_([row["id"] for row in batch]),
                    )
                )
                seen = set(staged)
                for row in batch:
                    if row["id"] in seen:
                        self._duplicate(row)
                stmt = insert(session, EventPlanStaging)
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["connection", "id"],
                        set_={name: stmt.excluded[name] for name in batch[0] if name != "id"},
                    ),
                    batch,
                )


async def clear_staging(db: Database, connection: str) -> None:
    async with db.session() as session:
        await session.execute(
            delete(EventPlanStaging).where(EventPlanStaging.connection == connection)
        )


async def apply_staged(
    session: AsyncSession, connection: str, *, now: datetime, previous_seen: datetime | None
) -> StoreResult:
    """Apply the staged document to the store in the caller's transaction, set-based (the
    database does the work, so memory does not grow with the feed), and clear the staging.

    A plan is written when it is new, came back, changed (content hash), or was seen online for
    the first time; a stored plan missing from the document leaves the feed (``in_feed``
    false, its values kept).
    """
    s, p = EventPlanStaging, aliased(EventPlan, name="p")
    mine = s.connection == connection
    online = s.sell_mode == "online"
    changed = or_(
        p.id.is_(None),
        p.in_feed.is_(False),
        p.content_hash != s.content_hash,
        and_(online, p.ever_online.is_(False)),
    )
    joined = s.__table__.outerjoin(p, p.id == s.id)
    plans, written, inserted = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(changed),
                func.count().filter(p.id.is_(None)),
            )
            .select_from(joined)
            .where(mine)
        )
    ).one()
    result = StoreResult(plans=plans, written=written, inserted=inserted)
    if written:
        result.version = version = await bump_version(session)
        stamp = literal(now, UTCDateTime())
        columns = {
            **{name: getattr(s, name) for name in _VALUE_COLUMNS},
            "ever_online": or_(online, func.coalesce(p.ever_online, false())),
            "in_feed": true(),
            "first_seen_at": stamp,
            "last_seen_at": stamp,
            "changed_at": stamp,
            "version": literal(version, BigInteger()),
        }
        stmt = insert(session, EventPlan).from_select(
            list(columns),
            select(*(value.label(name) for name, value in columns.items()))
            .select_from(joined)
            .where(mine, changed),
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={name: stmt.excluded[name] for name in columns if name not in _KEPT},
            )
        )
        await changes.plans_written(session, connection, version, now)
    # A plan that left the feed keeps its values; search does not change, so no version bump.
    gone = await session.execute(
        update(EventPlan)
        .where(
            EventPlan.connection == connection,
            EventPlan.in_feed.is_(True),
            ~exists().where(mine, s.id == EventPlan.id),
        )
        .values(in_feed=False, last_seen_at=previous_seen or now)
        .returning(*changes.PLAN_RETURNING)
        .execution_options(synchronize_session=False)
    )
    left = gone.all()
    await changes.plans_removed(session, connection, left)
    result.gone = len(left)
    await session.execute(delete(s).where(mine))
    return result


_VALUE_COLUMNS = (
    "id",
    "connection",
    "base_plan_id",
    "plan_id",
    "title",
    "sell_mode",
    "organizer_company_id",
    "starts_local",
    "ends_local",
    "starts_at",
    "ends_at",
    "sell_from",
    "sell_to",
    "sold_out",
    "zones",
    "capacity",
    "min_price",
    "max_price",
    "content_hash",
)
_KEPT = ("id", "first_seen_at")


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
    """One fetch of an ``xml_feed`` connection into the store (the syncer's ``run``).

    The body is parsed as it arrives and its plans staged in the database in bounded chunks;
    only a complete feed document is applied, in one transaction, so a failed, oversized or
    malformed fetch changes nothing. Memory does not grow with the size of the feed.
    """
    conn = ctx.connection
    assert isinstance(conn, XmlFeedConnection)
    name = ctx.name
    zone = provider_zone(conn.timezone)
    settings = ctx.config.settings
    async with ctx.db.read_session() as session:
        state = await _state(session, name)
    use_validators = state is not None and not ctx.full
    client = FeedClient(
        ctx.outbound.client(name),
        conn.url,
        max_bytes=settings.feed_max_bytes,
        max_download_bytes=settings.feed_max_download_bytes,
    )
    stager = _Stager(ctx.db, name)
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
                await clear_staging(ctx.db, name)  # what a killed run left
                document = await _read_document(fetched.chunks, stager, name, zone)
    except (AppError, RetryLater):
        metrics.INGESTS.labels(name, "provider_error").inc()
        await clear_staging(ctx.db, name)
        raise
    now = utcnow()
    if document is None:
        async with ctx.db.session() as session:
            await _save_state(session, name, last_success_at=now)
        metrics.INGESTS.labels(name, "not_modified").inc()
        return SyncResult(pages=1, detail={"not_modified": True})
    digest, size, parsed = document
    if use_validators and state is not None and state.document_hash == digest:
        await clear_staging(ctx.db, name)
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
        await clear_staging(ctx.db, name)
        metrics.INGESTS.labels(name, "not_a_feed").inc()
        raise FeedRejected(
            f"{name}: not a feed document ({parsed}; {size} bytes, "
            f"content-type {fetched.content_type or 'none'})"
        )
    skipped = parsed.skipped + stager.skipped
    examples = (parsed.examples + stager.examples)[:MAX_EXAMPLES]
    ctx.progress(
        f"{name}: document read ({size:,} bytes, {sum(skipped.values()):,} skipped); storing"
    )
    async with ctx.db.session() as session:
        stored = await apply_staged(
            session,
            name,
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
    for reason, count in skipped.items():
        metrics.PLANS_SKIPPED.labels(name, reason).inc(count)
    detail: dict[str, Any] = {
        "dialect": parsed.dialect,
        "bytes": size,
        "plans": stored.plans,
        "inserted": stored.inserted,
        "unchanged": stored.plans - stored.written,
        "left_feed": stored.gone,
        "version": stored.version,
    }
    if skipped:
        detail["skipped_reasons"] = dict(skipped)
        detail["skipped_examples"] = examples[:5]
    return SyncResult(
        pages=1,
        upserted=stored.written,
        deleted=0,
        skipped=sum(skipped.values()),
        errors=0,
        detail=detail,
    )


_STAGE_PLANS = 2000
"""Plans staged per transaction: the most the ingest holds at once, whatever the feed's size."""


async def _read_document(
    chunks: AsyncIterator[bytes], stager: _Stager, connection: str, zone: tzinfo
) -> tuple[str, int, ParsedFeed | NotAFeed]:
    """Hash, parse and stage the body as it arrives: memory stays bounded by a few chunks and
    one staging batch, not the document. Parsing is CPU-bound, so it runs off the event loop
    (the API keeps answering during a large ingest) — in one thread for the whole document,
    because an lxml parser must stay on the thread that created it (libxml2 keeps per-thread
    state). Returns the digest, the size, and the parse's summary (its plans are staged) or why
    the document is not a feed (an identical document is skipped by digest).
    """
    inbox: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
    outbox: queue.SimpleQueue[list[dict[str, Any]]] = queue.SimpleQueue()
    abandon = threading.Event()
    parsing = asyncio.get_running_loop().run_in_executor(
        None, _parse_queue, inbox, outbox, abandon, connection, zone
    )
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            await _put(inbox, chunk)
            await _stage_ready(outbox, stager, _STAGE_PLANS)
    except BaseException:
        abandon.set()  # a failed or cancelled read: the thread drops what is queued and ends
        raise
    finally:
        await _put(inbox, None)  # always: the parsing thread must finish
        parsed = await parsing
    await _stage_ready(outbox, stager, 0)
    return digest.hexdigest(), size, parsed


async def _stage_ready(
    outbox: queue.SimpleQueue[list[dict[str, Any]]], stager: _Stager, at_least: int
) -> None:
    """Stage what the parser has handed over, once ``at_least`` plans are waiting."""
    while True:
        try:
            stager.add(outbox.get_nowait())
        except queue.Empty:
            break
    if len(stager.pending) >= at_least:
        await stager.flush()


async def _put(pending: queue.Queue[bytes | None], item: bytes | None) -> None:
    try:
        pending.put_nowait(item)
    except queue.Full:
        await asyncio.to_thread(pending.put, item)


def _parse_queue(
    inbox: queue.Queue[bytes | None],
    outbox: queue.SimpleQueue[list[dict[str, Any]]],
    abandon: threading.Event,
    connection: str,
    zone: tzinfo,
) -> ParsedFeed | NotAFeed:
    parser = FeedParser()
    problem: NotAFeed | None = None
    while (chunk := inbox.get()) is not None:
        if problem is None and not abandon.is_set():
            try:
                parser.feed(chunk)
            except NotAFeed as exc:
                problem = exc  # keep draining: the reader must never block on a full queue
                continue
            if plans := parser.take():
                outbox.put([plan_values(connection, plan, zone) for plan in plans])
    if problem is not None:
        return problem
    if abandon.is_set():
        return NotAFeed("the read was abandoned")
    try:
        parsed = parser.close()
    except NotAFeed as exc:
        return exc
    if parsed.plans:
        outbox.put([plan_values(connection, plan, zone) for plan in parsed.plans])
        parsed.plans = []
    return parsed


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
