"""Change events: emitted in the transaction of the change, sequenced at its commit, read as a
feed (``GET /changes``) and fanned out to subscriptions.

**Sequence.** :func:`emit` inserts the events with ``seq`` NULL, tagged with a token of the
writing transaction (``session.info``): a rolled-back transaction, or savepoint, takes its events
with it, and a committed one keeps them. Just before that transaction commits (a
``before_commit`` hook, :func:`_sequence`), it takes the row lock of the ``sequence`` counter,
moves the counter past its events and gives them ``seq`` values above every ``seq`` committed
before, then commits. The counter's lock is the last lock such a transaction takes and is held
only for those two statements and the ``COMMIT``, so transactions that emitted commit in
``seq`` order: once a reader sees ``seq`` N, every event with a lower ``seq`` is already
visible, and none ever appears below N later (a reader paging ``after=N`` skips nothing; the
sequence may have holes, never late arrivals). On SQLite the write transaction already
excludes every other writer; on PostgreSQL the row lock orders them (2 API processes and a
worker included). Readers, the dispatcher included, only see events with a ``seq``.

**Fan-out.** The same commit enqueues the coalescing ``changes.dispatch`` job; the dispatcher
(one at a time: a keyed job) reads the events after its own cursor in ``seq`` order and
enqueues one ``changes.deliver`` job per (event, matching subscription) keyed by
``(subscription, subject)``. Jobs of one key run one at a time in enqueue order (see
``jobs.queue.claim_batches``), and a job waiting for its retry holds back the later ones, so a
subscription gets the events about one object in order, each after the previous one succeeded
or was given up; events about different objects go in parallel. Delivery jobs never coalesce.
A subscription gets the events committed after it was created (``after_seq``, read under the
same counter lock).
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_session
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_

from switchboard.db import utcnow
from switchboard.jobs import queue
from switchboard.models import ChangeAttempt, ChangeCursor, ChangeEvent, EventSubscription

DISPATCH = "changes.dispatch"
DELIVER = "changes.deliver"
SEQUENCE = "sequence"
DISPATCHED = "dispatched"
_TXN = "switchboard.changes.txn"
DISPATCH_BATCH = 500
"""Events fanned out per dispatcher transaction."""


@dataclass(frozen=True)
class NewEvent:
    """One event for :func:`emit_many`. ``subject`` names the object (``contact:<id>``)."""

    type: str
    subject: str
    data: dict[str, Any]
    connection: str | None = None


async def emit(
    session: AsyncSession,
    type: str,
    subject: str,
    data: dict[str, Any],
    *,
    connection: str | None = None,
) -> None:
    """Record an event in the caller's transaction (it exists if and only if that commits)."""
    await emit_many(session, [NewEvent(type, subject, data, connection)])


async def emit_many(session: AsyncSession, events: Iterable[NewEvent]) -> None:
    rows: list[dict[str, Any]] = [
        {
            "type": e.type,
            "subject": e.subject,
            "connection": e.connection,
            "data": e.data,
        }
        for e in events
    ]
    if not rows:
        return
    txn = session.info.get(_TXN)
    if txn is None:
        txn = session.info[_TXN] = uuid.uuid4().hex
    now = utcnow()
    for row in rows:
        row["txn"] = txn
        row["created_at"] = now
    await session.execute(insert(ChangeEvent), rows)


async def _assign(session: AsyncSession, txn: str) -> None:
    """Give the events of transaction ``txn`` their ``seq`` (see the module docstring)."""
    low, high = (
        await session.execute(
            select(func.min(ChangeEvent.id), func.max(ChangeEvent.id)).where(ChangeEvent.txn == txn)
        )
    ).one()
    if low is None:
        return  # every event was in a savepoint that rolled back
    last = (
        await session.execute(
            update(ChangeCursor)
            .where(ChangeCursor.name == SEQUENCE)
            .values(value=ChangeCursor.value + (high - low + 1))
            .returning(ChangeCursor.value)
        )
    ).scalar_one()
    # seq = id + offset: increasing in id order, from the previous counter + 1 up to ``last``.
    await session.execute(
        update(ChangeEvent)
        .where(ChangeEvent.txn == txn)
        .values(seq=ChangeEvent.id + (last - high), txn=None)
        .execution_options(synchronize_session=False)
    )
    await queue.enqueue(session, DISPATCH, {}, key=DISPATCH, coalesce=True)


@event.listens_for(Session, "before_commit")
def _sequence(session: Session) -> None:
    txn = session.info.pop(_TXN, None)
    if txn is None:
        return
    proxy = async_session(session)
    assert proxy is not None, "change events are emitted through an AsyncSession"
    # Runs inside the AsyncSession's commit (a greenlet): await_ runs the async statements.
    await_(_assign(proxy, txn))


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction only: a savepoint's rollback (which also fires after_rollback)
    # takes its own events with it, and the transaction's other events still commit.
    if transaction.parent is None:
        session.info.pop(_TXN, None)


# --- the feed ---------------------------------------------------------------------------------


async def list_events(
    session: AsyncSession,
    *,
    after: int,
    limit: int,
    types: Sequence[str] = (),
    subject: str | None = None,
    connection: str | None = None,
) -> list[ChangeEvent]:
    """Sequenced events after ``after`` in ``seq`` order (``types`` may hold wildcards)."""
    query = select(ChangeEvent).where(ChangeEvent.seq.is_not(None), ChangeEvent.seq > after)
    if types:
        query = query.where(or_(*(_type_clause(t) for t in types)))
    if subject is not None:
        query = query.where(ChangeEvent.subject == subject)
    if connection is not None:
        query = query.where(ChangeEvent.connection == connection)
    return list((await session.scalars(query.order_by(ChangeEvent.seq).limit(limit))).all())


def _type_clause(pattern: str) -> Any:
    if pattern == "*":
        return ChangeEvent.type.is_not(None)
    if pattern.endswith(".*"):
        return ChangeEvent.type.startswith(pattern[:-1], autoescape=True)
    return ChangeEvent.type == pattern


def matches(patterns: Iterable[str], type: str) -> bool:
    """Whether an event type matches a subscription's types: exact, ``*``, or ``prefix.*``."""
    for pattern in patterns:
        if pattern in ("*", type) or (pattern.endswith(".*") and type.startswith(pattern[:-1])):
            return True
    return False


async def get_event(session: AsyncSession, event_id: int) -> ChangeEvent | None:
    found = await session.get(ChangeEvent, event_id)
    return found if found is not None and found.seq is not None else None


def public_id(event_id: int) -> str:
    return f"evt_{event_id}"


def parse_public_id(value: str) -> int | None:
    digits = value.removeprefix("evt_")
    # ASCII digits only (str.isdigit takes "²" too), and within a BIGINT.
    return int(digits) if re.fullmatch(r"[0-9]{1,18}", digits) else None


def envelope(row: ChangeEvent) -> dict[str, Any]:
    """The JSON an event is delivered and listed as."""
    return {
        "id": public_id(row.id),
        "seq": row.seq,
        "type": row.type,
        "subject": row.subject,
        "connection": row.connection,
        "timestamp": row.created_at.isoformat(),
        "data": row.data,
    }


# --- fan-out ----------------------------------------------------------------------------------


def job_key(subscription_id: str, subject: str) -> str:
    return f"chg:{subscription_id}:{subject}"[:255]


def delivery_job(
    subscription: EventSubscription, event_id: int, subject: str, *, attempts: int
) -> queue.NewJob:
    """A delivery: keyed by (subscription, subject), never coalesced; ``attempts`` is the
    length of the retry schedule (the handler gives up after its last step)."""
    return queue.NewJob(
        DELIVER,
        {"event": event_id, "subscription": subscription.id},
        key=job_key(subscription.id, subject),
        max_attempts=attempts,
    )


async def dispatch(session: AsyncSession, *, attempts: int, limit: int = DISPATCH_BATCH) -> bool:
    """Fan out the next events after the ``dispatched`` cursor; returns whether more may wait.

    The caller is the only dispatcher (a keyed job); the cursor row is locked anyway."""
    cursor = (
        await session.scalars(
            select(ChangeCursor).where(ChangeCursor.name == DISPATCHED).with_for_update()
        )
    ).one()
    events = (
        await session.execute(
            select(
                ChangeEvent.id,
                ChangeEvent.seq,
                ChangeEvent.type,
                ChangeEvent.subject,
                ChangeEvent.connection,
            )
            .where(ChangeEvent.seq > cursor.value)
            .order_by(ChangeEvent.seq)
            .limit(limit)
        )
    ).all()
    if not events:
        return False
    subs = list(
        (await session.scalars(select(EventSubscription).where(EventSubscription.enabled))).all()
    )
    jobs: list[queue.NewJob] = []
    for event_id, seq, type_, subject, connection in events:
        for sub in subs:
            if int(seq or 0) <= sub.after_seq or not matches(sub.event_types, type_):
                continue
            if sub.connection is not None and sub.connection != connection:
                continue
            jobs.append(delivery_job(sub, event_id, subject, attempts=attempts))
    await queue.enqueue_many(session, jobs)
    cursor.value = int(events[-1][1] or 0)
    return len(events) == limit


# --- subscriptions ----------------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_subscription_id() -> str:
    return "sub_" + uuid.uuid4().hex[:20]


async def lock_sequence(session: AsyncSession) -> int:
    """Take the sequence's lock (until this transaction ends) and return its value: a
    subscription created under it gets exactly the events committed after it."""
    value = (
        await session.scalars(
            select(ChangeCursor.value).where(ChangeCursor.name == SEQUENCE).with_for_update()
        )
    ).one()
    return int(value)


async def list_subscriptions(session: AsyncSession) -> list[EventSubscription]:
    rows = await session.scalars(select(EventSubscription).order_by(EventSubscription.created_at))
    return list(rows.all())


async def get_subscription(session: AsyncSession, sub_id: str) -> EventSubscription | None:
    return await session.get(EventSubscription, sub_id)


async def delete_subscription(session: AsyncSession, sub: EventSubscription) -> None:
    await session.delete(sub)


def signing_secrets(sub: EventSubscription, now: datetime) -> list[str]:
    """The encrypted secrets a delivery is signed with now: the current one, and the previous
    one during the overlap after a rotation."""
    found = [sub.secret]
    if sub.previous_secret and sub.previous_until is not None and sub.previous_until > now:
        found.append(sub.previous_secret)
    return found


# --- attempts and pruning ---------------------------------------------------------------------


async def failed_since(
    session: AsyncSession, sub_id: str, since: datetime
) -> list[tuple[int, str]]:
    """The events given up for ``sub_id`` since ``since`` and not delivered after: (event id,
    subject) in event order."""
    delivered = (
        select(ChangeAttempt.event_id)
        .where(ChangeAttempt.subscription_id == sub_id, ChangeAttempt.outcome == "succeeded")
        .scalar_subquery()
    )
    rows = await session.execute(
        select(ChangeEvent.id, ChangeEvent.subject)
        .where(
            ChangeEvent.id.in_(
                select(ChangeAttempt.event_id).where(
                    ChangeAttempt.subscription_id == sub_id,
                    ChangeAttempt.outcome == "failed",
                    ChangeAttempt.created_at >= since,
                )
            ),
            ChangeEvent.id.not_in(delivered),
        )
        .order_by(ChangeEvent.seq)
    )
    return [(int(i), str(s)) for i, s in rows.all()]


async def prune(session: AsyncSession, *, older_than: datetime) -> tuple[int, int]:
    """Delete events and attempts older than ``older_than``; returns how many of each."""
    attempts = await session.execute(
        delete(ChangeAttempt).where(ChangeAttempt.created_at < older_than)
    )
    events = await session.execute(
        delete(ChangeEvent).where(ChangeEvent.created_at < older_than, ChangeEvent.seq.is_not(None))
    )
    return int(events.rowcount), int(attempts.rowcount)  # type: ignore[attr-defined]


def retention_cutoff(retention: timedelta) -> datetime:
    return utcnow() - retention
