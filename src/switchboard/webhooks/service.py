"""The delivery log shared by every webhook source.

Applied deliveries are the audit trail and the dedupe index: kept whole. Deliveries that were
not applied (bad signature, malformed, refused) can come from anyone who reaches the port, so
what is kept of them is bounded three ways: a body prefix only, a token bucket per source
(connection and client address) and per connection beyond which they are answered but not
logged, and :func:`prune`, which bounds the whole log by age and total size.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard import metrics
from switchboard.db import Database, utcnow
from switchboard.models import WebhookDelivery
from switchboard.settings import RateLimit, Settings

MAX_KEY = 200
"""``webhook_deliveries.dedupe_key`` is ``VARCHAR(200)``: longer keys are stored hashed."""


def body_key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def bounded_key(raw: str) -> str:
    """``raw`` as a dedupe key that fits the column: senders choose ids (``webhook-id``, HubSpot's
    event fields) and may make them any length. Stable, so redeliveries still match."""
    if len(raw) <= MAX_KEY and raw.isprintable():
        return raw
    return "sha256-key:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


async def applied_keys(session: AsyncSession, refs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which ``(connection, dedupe key)`` pairs name deliveries already applied."""
    if not refs:
        return set()
    stored = {(conn, bounded_key(key)): (conn, key) for conn, key in refs}
    rows = await session.execute(
        select(WebhookDelivery.connection, WebhookDelivery.dedupe_key).where(
            WebhookDelivery.dedupe_key.in_({key for _, key in stored}),
            WebhookDelivery.connection.in_({conn for conn, _ in stored}),
        )
    )
    return {stored[row] for row in map(tuple, rows.all()) if row in stored}


def _text(body: bytes) -> str:
    # NUL cannot be stored in PostgreSQL text; invalid UTF-8 is kept visible as U+FFFD.
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def delivery_row(
    *,
    connection: str,
    body: bytes,
    status_code: int,
    outcome: str,
    response: Any = None,
    dedupe_key: str | None = None,
    client: str | None = None,
    keep_body: int | None = None,
) -> dict[str, Any]:
    """One delivery for :func:`record`. ``dedupe_key`` is set only for deliveries whose effect
    was applied, so a redelivery of an event that failed (say, an update that arrived before its
    create) is processed again rather than answered from the log. ``keep_body`` bytes of the
    body are stored (all of it when ``None``)."""
    stored = _text(body if keep_body is None else body[:keep_body])
    detail = None if response is None else json.dumps(response)
    return {
        "connection": connection,
        "dedupe_key": bounded_key(dedupe_key) if dedupe_key else _unapplied(),
        "received_at": utcnow(),
        "body": stored,
        "status_code": status_code,
        "outcome": outcome,
        "detail": detail,
        "client": None if client is None else client[:64],
        "body_bytes": len(body),
        "stored_bytes": len(stored) + (len(detail) if detail else 0),
    }


def _unapplied() -> str:
    return f"unapplied:{uuid.uuid4().hex}"


async def record(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Log deliveries (one statement)."""
    if not rows:
        return
    await session.execute(insert(WebhookDelivery), rows)
    for row in rows:
        metrics.WEBHOOK_DELIVERIES.labels(row["connection"], row["outcome"]).inc()


# --- rejected deliveries ----------------------------------------------------------------------


class _Buckets:
    """Token buckets by key: ``rate.requests`` at once, refilled over ``rate.per``. Full buckets
    are forgotten, so memory is bounded by the sources seen within one window."""

    MAX_KEYS = 10_000

    def __init__(self, rate: RateLimit, clock: Callable[[], float]) -> None:
        self.capacity = float(rate.requests)
        self.refill = rate.requests / max(rate.per.total_seconds(), 1e-9)
        self.clock = clock
        self._tokens: dict[Any, tuple[float, float]] = {}

    def _level(self, key: Any, now: float) -> float:
        tokens, at = self._tokens.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.refill)

    def available(self, key: Any) -> bool:
        return self._level(key, self.clock()) >= 1

    def take(self, key: Any) -> None:
        now = self.clock()
        if len(self._tokens) >= self.MAX_KEYS:
            self._tokens = {
                k: (t, at)
                for k, (t, at) in self._tokens.items()
                if t + (now - at) * self.refill < self.capacity
            }
        self._tokens[key] = (self._level(key, now) - 1, now)


class RejectedLog:
    """Whether a delivery that was not applied may be logged, and how much of its body.

    In memory, per process: the bound it gives is per process, which is what protects the disk
    (a cluster of N processes logs at most N times the rate)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.body_bytes = settings.webhook_rejected_body_bytes
        self._per_source = _Buckets(settings.webhook_rejected_rate, clock)
        self._per_connection = _Buckets(settings.webhook_rejected_connection_rate, clock)

    def admit(self, connection: str, client: str | None) -> bool:
        source = (connection, client)
        if not (self._per_source.available(source) and self._per_connection.available(connection)):
            metrics.WEBHOOK_DELIVERIES.labels(connection, "rejected_not_logged").inc()
            return False
        self._per_source.take(source)
        self._per_connection.take(connection)
        return True


def rejected_log(request: Request) -> RejectedLog:
    log: RejectedLog | None = getattr(request.app.state, "webhook_rejected_log", None)
    if log is None:
        log = RejectedLog(request.app.state.config.settings)
        request.app.state.webhook_rejected_log = log
    return log


def client_address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


async def record_rejected(
    db: Database,
    request: Request,
    *,
    connection: str,
    body: bytes,
    outcome: str,
    response: Any,
    status_code: int = 401,
) -> None:
    """Log a delivery refused before it reached its receiver's logic (a bad signature), within
    the rejected-delivery bounds."""
    log = rejected_log(request)
    client = client_address(request)
    if not log.admit(connection, client):
        return
    async with db.session() as session:
        await record(
            session,
            [
                delivery_row(
                    connection=connection,
                    body=body,
                    status_code=status_code,
                    outcome=outcome,
                    response=response,
                    client=client,
                    keep_body=log.body_bytes,
                )
            ],
        )


# --- pruning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    by_age: int
    by_size: int


async def prune(
    session: AsyncSession, *, older_than: datetime, max_bytes: int, batch: int = 5_000
) -> Pruned:
    """Delete deliveries received before ``older_than``, then, while the log stores more than
    ``max_bytes`` (0: no bound), the oldest deliveries that were not applied and, if that is
    not enough, the oldest applied ones."""
    by_age = 0
    while True:
        ids = (
            await session.scalars(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.received_at < older_than)
                .order_by(WebhookDelivery.id)
                .limit(batch)
            )
        ).all()
        if not ids:
            break
        by_age += await _delete(session, list(ids))
    by_size = 0
    if max_bytes > 0:
        total = await session.scalar(
            select(func.coalesce(func.sum(WebhookDelivery.stored_bytes), 0))
        )
        excess = int(total or 0) - max_bytes
        for applied in (False, True):
            if excess <= 0:
                break
            removed, freed = await _trim_oldest(session, applied=applied, excess=excess)
            by_size += removed
            excess -= freed
    return Pruned(by_age, by_size)


async def _trim_oldest(session: AsyncSession, *, applied: bool, excess: int) -> tuple[int, int]:
    """Delete the oldest rows of one class until they have freed at least ``excess`` bytes."""
    is_applied = (WebhookDelivery.status_code >= 200) & (WebhookDelivery.status_code < 300)
    running = (
        select(
            WebhookDelivery.id.label("id"),
            func.sum(WebhookDelivery.stored_bytes)
            .over(order_by=WebhookDelivery.id)
            .label("running"),
        )
        .where(is_applied if applied else ~is_applied)
        .subquery()
    )
    cutoff = await session.scalar(select(func.min(running.c.id)).where(running.c.running >= excess))
    cond = is_applied if applied else ~is_applied
    if cutoff is None:  # the whole class is not enough: it all goes
        stmt = select(WebhookDelivery.id, WebhookDelivery.stored_bytes).where(cond)
    else:
        stmt = select(WebhookDelivery.id, WebhookDelivery.stored_bytes).where(
            cond, WebhookDelivery.id <= cutoff
        )
    rows = (await session.execute(stmt)).all()
    removed = 0
    for start in range(0, len(rows), 5_000):
        removed += await _delete(session, [row[0] for row in rows[start : start + 5_000]])
    return removed, sum(row[1] for row in rows)


async def _delete(session: AsyncSession, ids: list[int]) -> int:
    result = await session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
