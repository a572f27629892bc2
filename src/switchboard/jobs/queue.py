"""The job table's state machine: enqueue, claim, finish, retry, reap, replay.

    pending --claim--> running --ok--> succeeded
       ^                  |  \\--terminal / exhausted / past deadline--> dead --replay--> pending
       '----retry/lease---'

Every function takes the caller's session and never commits: the caller owns the transaction.
Claims must run in a write transaction (``Database.session()``: ``BEGIN IMMEDIATE`` on SQLite;
``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, delete, exists, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from switchboard.db import insert, utcnow
from switchboard.models import Job

ENQUEUED_KINDS = "switchboard.enqueued_kinds"  # session.info key read by the after-commit hook


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(n-1)))."""

    base: float = 1.0
    cap: float = 3600.0

    def delay(self, failures: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(failures - 1, 0))
        return random.uniform(0, ceiling)


def _pending_key(kind: str, key: str) -> str:
    return f"{kind}\x1f{key}"


@dataclass(frozen=True)
class NewJob:
    """One job for :func:`enqueue_many` (the parameters of :func:`enqueue`)."""

    kind: str
    payload: dict[str, Any]
    key: str | None = None
    coalesce: bool = False
    run_at: datetime | None = None
    max_attempts: int | None = None
    deadline: datetime | None = None


def _row(job: NewJob, now: datetime) -> dict[str, Any]:
    if job.coalesce and job.key is None:
        raise ValueError("coalesce=True needs a key")
    return {
        "kind": job.kind,
        "key": job.key,
        "payload": job.payload,
        "connection": _connection_of(job.payload),
        "state": "pending",
        "coalescing": job.coalesce,
        "pending_key": _pending_key(job.kind, job.key) if job.coalesce and job.key else None,
        "attempts": 0,
        "deferrals": 0,
        "max_attempts": job.max_attempts,
        "run_at": job.run_at or now,
        "deadline": job.deadline,
        "created_at": now,
        "updated_at": now,
    }


def _connection_of(payload: dict[str, Any]) -> str | None:
    connection = payload.get("connection")
    return connection if isinstance(connection, str) else None


_UPSERTS: dict[str, Any] = {}


def _upsert(session: AsyncSession) -> Any:
    """The job insert, built once per dialect and executed with parameters (a new statement per
    call cost more than the write itself). Coalescing: the pending job of the key takes the
    newest payload and deadline and keeps its place and retry time (``pending_key`` is NULL for
    other jobs, which never conflict)."""
    dialect = session.get_bind().dialect.name
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        base = insert(session, cast(Table, Job.__table__))
        stmt = _UPSERTS[dialect] = base.on_conflict_do_update(
            index_elements=["pending_key"],
            set_={
                "payload": base.excluded.payload,
                "deadline": base.excluded.deadline,
                "max_attempts": base.excluded.max_attempts,
                "updated_at": base.excluded.updated_at,
            },
        )
    return stmt


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    key: str | None = None,
    coalesce: bool = False,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    deadline: datetime | None = None,
) -> int:
    """Write a job in the caller's transaction and return its id.

    With ``coalesce=True`` (``key`` required) there is at most one pending job of this kind per
    key: enqueueing again replaces that job's payload and deadline (the newest state wins) and
    keeps its place and retry time; a job of the key that is already running is not touched, the
    new one runs after it. ``max_attempts=None`` means the worker's default
    (``SWITCHBOARD_JOB_MAX_ATTEMPTS``), or, with a ``deadline``, retry until the deadline.
    """
    job = NewJob(kind, payload, key, coalesce, run_at, max_attempts, deadline)
    row = _row(job, utcnow())
    result = await session.execute(_upsert(session).returning(Job.__table__.c.id), row)
    job_id: int = result.scalar_one()
    session.info.setdefault(ENQUEUED_KINDS, set()).add(kind)
    return job_id


async def pending_payloads(
    session: AsyncSession, kind: str, keys: list[str]
) -> dict[str, dict[str, Any]]:
    """The payloads of the pending coalescing jobs of ``kind`` with these keys, by key: what an
    enqueue would replace, for a caller that merges rather than replaces."""
    if not keys:
        return {}
    rows = await session.execute(
        select(Job.key, Job.payload).where(
            Job.pending_key.in_([_pending_key(kind, key) for key in keys])
        )
    )
    return {str(key): dict(payload) for key, payload in rows.all()}


async def enqueue_many(session: AsyncSession, jobs: list[NewJob]) -> None:
    """Write several jobs in one statement, in the caller's transaction, in list order (a
    later coalescing job of the same key supersedes an earlier one)."""
    if not jobs:
        return
    now = utcnow()
    rows: dict[Any, dict[str, Any]] = {}
    for i, job in enumerate(jobs):
        row = _row(job, now)
        # One row per pending key: a statement may not update the same row twice.
        rows.pop(row["pending_key"], None)
        rows[row["pending_key"] or ("unkeyed", i)] = row
    await session.execute(_upsert(session), list(rows.values()))
    session.info.setdefault(ENQUEUED_KINDS, set()).update(job.kind for job in jobs)


async def claim(
    session: AsyncSession,
    *,
    worker: str,
    kinds: list[str],
    limit: int,
    lease: timedelta,
    limits: Mapping[str, int] | None = None,
) -> list[Job]:
    """Move up to ``limit`` due jobs to ``running`` under this worker's lease; ``limits`` caps
    some kinds lower (:func:`claim_batches` with batches of one, flattened in id order)."""
    batches = await claim_batches(
        session, worker=worker, kinds=kinds, limit=limit, lease=lease, limits=limits
    )
    return sorted((job for batch in batches for job in batch), key=lambda j: j.id)


async def claim_batches(
    session: AsyncSession,
    *,
    worker: str,
    kinds: list[str],
    limit: int,
    lease: timedelta,
    limits: Mapping[str, int] | None = None,
    sizes: Mapping[str, int] | None = None,
) -> list[list[Job]]:
    """Move due jobs to ``running`` under this worker's lease, as up to ``limit`` batches (at
    most ``limits[kind]`` of a kind) of up to ``sizes[kind]`` jobs of one kind (default 1).

    A keyed job is claimable only when no job of its key is running and it is the oldest
    pending job of its key: jobs sharing a key run one at a time, in enqueue (id) order, a job
    waiting for its retry holds back the later ones, and no batch holds two jobs of one key.

    Kinds are claimed one at a time, the kind with the oldest due job first, each by its own
    walk of the ``(state, kind, run_at)`` index (one statement for all of a kind's batches): a
    backlog of one kind (thousands of CRM updates waiting out a rate limit) costs nothing to a
    claim of the others. Whatever is due goes out at once: a batch is never held back to fill.
    Jobs of a batch of more than one record it in ``batch`` (the id of its first job).
    """
    batches: list[list[Job]] = []
    for kind in await due_kinds(session, kinds=kinds):
        room = min(limit - len(batches), (limits or {}).get(kind, limit))
        if room <= 0:
            continue
        size = max(1, (sizes or {}).get(kind, 1))
        jobs = await _claim_kind(session, worker=worker, kind=kind, limit=room * size, lease=lease)
        jobs.sort(key=lambda j: j.id)
        # Full batches: each is one provider request, and requests are what a CRM limits.
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            batches.append(batch)
            if len(batch) > 1:
                await session.execute(
                    update(Job)
                    .where(Job.id.in_([j.id for j in batch]))
                    .values(batch=batch[0].id)
                    .execution_options(synchronize_session=False)
                )
                for job in batch:
                    job.batch = batch[0].id
    return batches


async def _claim_kind(
    session: AsyncSession, *, worker: str, kind: str, limit: int, lease: timedelta
) -> list[Job]:
    now = utcnow()
    other = aliased(Job)
    key_free = or_(
        Job.key.is_(None),
        and_(
            ~exists().where(other.key == Job.key, other.state == "running"),
            ~exists().where(other.key == Job.key, other.state == "pending", other.id < Job.id),
        ),
    )
    candidates = (
        select(Job.id)
        .where(Job.state == "pending", Job.kind == kind, Job.run_at <= now, key_free)
        .order_by(Job.run_at, Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Job)
        .where(Job.id.in_(candidates.scalar_subquery()))
        .values(
            state="running",
            attempts=Job.attempts + 1,
            started_at=now,
            lease_until=now + lease,
            worker=worker,
            pending_key=None,
            batch=None,
        )
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    return list((await session.scalars(stmt)).all())


async def due_kinds(session: AsyncSession, *, kinds: list[str]) -> list[str]:
    """The kinds among ``kinds`` with a due pending job, the oldest due first (keys aside).

    One statement of one index probe per kind (the oldest due ``run_at`` of each), so its cost
    does not grow with the number of pending jobs."""
    if not kinds:
        return []
    now = utcnow()
    oldest = [
        select(func.min(Job.run_at))
        .where(Job.state == "pending", Job.kind == kind, Job.run_at <= now)
        .scalar_subquery()
        for kind in kinds
    ]
    row = (await session.execute(select(*oldest))).one()
    due = sorted((run_at, kind) for kind, run_at in zip(kinds, row, strict=True) if run_at)
    return [kind for _, kind in due]


def _attempts_left(job: Job, default_max_attempts: int) -> bool:
    limit = job.max_attempts
    if limit is None and job.deadline is None:
        limit = default_max_attempts
    return limit is None or job.attempts - job.deferrals < limit


async def anything_due(session: AsyncSession, *, kinds: list[str]) -> bool:
    """Whether some job of these kinds is due (keys aside): a cheap read before a claim."""
    return bool(await due_kinds(session, kinds=kinds))


def _owned(job_id: int, worker: str, attempt: int) -> Any:
    # A worker whose lease lapsed must not overwrite what the job's next owner did.
    return and_(
        Job.id == job_id, Job.state == "running", Job.worker == worker, Job.attempts == attempt
    )


async def succeed(session: AsyncSession, job_id: int, *, worker: str, attempt: int) -> bool:
    """Mark a job done. Returns False when this worker no longer owned it."""
    return job_id in await succeed_many(session, [(job_id, attempt)], worker=worker)


async def succeed_many(
    session: AsyncSession, runs: list[tuple[int, int]], *, worker: str
) -> set[int]:
    """Mark several ``(job id, attempt)`` runs done in one statement; returns the ids this
    worker still owned (the others were reclaimed after a lapsed lease)."""
    if not runs:
        return set()
    stmt = (
        update(Job)
        .where(
            tuple_(Job.id, Job.attempts).in_(runs),
            Job.state == "running",
            Job.worker == worker,
        )
        .values(state="succeeded", finished_at=utcnow(), lease_until=None, last_error=None)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return set((await session.scalars(stmt)).all())


async def fail(
    session: AsyncSession,
    job_id: int,
    *,
    worker: str,
    attempt: int,
    error: str,
    terminal: bool = False,
    retry_in: float | None = None,
    deferred: bool = False,
    backoff: Backoff,
    default_max_attempts: int = 10,
    now: datetime | None = None,
) -> str | None:
    """Record a failed run; returns the job's new state ("pending" or "dead"), or None when this
    worker no longer owned the job.

    ``retry_in`` fixes the wait (Retry-After); ``deferred`` runs (RetryLater) do not count
    against ``max_attempts``, only against the deadline. The jobs of one failed batch share
    ``now``: with one Retry-After they come due together and go out as one batch again.
    """
    job = (
        await session.scalars(select(Job).where(_owned(job_id, worker, attempt)).with_for_update())
    ).one_or_none()
    if job is None:
        return None
    now = now or utcnow()
    if deferred:
        job.deferrals += 1
    failures = job.attempts - job.deferrals
    exhausted = not _attempts_left(job, default_max_attempts)
    past_deadline = job.deadline is not None and now >= job.deadline
    if terminal or past_deadline or (exhausted and not deferred):
        reason = "terminal" if terminal else "past deadline" if past_deadline else "exhausted"
        _bury(job, now, f"{error} ({reason} after {job.attempts} attempt(s))")
        return "dead"
    delay = retry_in if retry_in is not None else backoff.delay(failures)
    run_at = now + timedelta(seconds=max(delay, 0.0))
    if job.deadline is not None:
        run_at = min(run_at, job.deadline)
    await _requeue(session, job, now, run_at, error)
    return job.state


def _bury(job: Job, now: datetime, error: str) -> None:
    job.state = "dead"
    job.finished_at = now
    job.lease_until = None
    job.pending_key = None
    job.last_error = error


async def _requeue(
    session: AsyncSession, job: Job, now: datetime, run_at: datetime, error: str
) -> None:
    """Back to pending. A coalescing job whose key already has a newer pending job is superseded
    instead: the newer job carries the newest state, so running this one could only go back in
    time."""
    job.state = "pending"
    job.run_at = run_at
    job.lease_until = None
    job.worker = None
    job.last_error = error
    job.updated_at = now
    if not job.coalescing or job.key is None:
        return
    try:
        async with session.begin_nested():
            job.pending_key = _pending_key(job.kind, job.key)
            await session.flush()
    except IntegrityError:
        job.pending_key = None
        job.state = "succeeded"
        job.finished_at = now
        job.last_error = f"superseded by a newer pending job after: {error}"
        await session.flush()


async def wake(session: AsyncSession, *, reason: str, now: datetime | None = None) -> int:
    """Bring forward the pending jobs that wait with ``reason`` (a ``RetryLater`` whose cause
    is gone, such as a resumed connection): due now instead of at their next look. How many."""
    now = now or utcnow()
    stmt = (
        update(Job)
        .where(Job.state == "pending", Job.run_at > now, Job.last_error == reason)
        .values(run_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def reap(
    session: AsyncSession, *, now: datetime | None = None, default_max_attempts: int = 10
) -> int:
    """Return running jobs whose lease expired (their worker died) to pending, or bury them when
    they have no attempts left. Returns how many were reaped."""
    now = now or utcnow()
    expired = (
        await session.scalars(
            select(Job)
            .where(Job.state == "running", Job.lease_until < now)
            .with_for_update(skip_locked=True)
            .limit(100)
        )
    ).all()
    for job in expired:
        error = f"lease expired: worker {job.worker} stopped during attempt {job.attempts}"
        if not _attempts_left(job, default_max_attempts) or (
            job.deadline is not None and now >= job.deadline
        ):
            _bury(job, now, error)
        else:
            await _requeue(session, job, now, now, error)
    return len(expired)


async def heartbeat(
    session: AsyncSession, *, worker: str, job_ids: list[int], lease: timedelta
) -> None:
    if job_ids:
        await session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.worker == worker, Job.state == "running")
            .values(lease_until=utcnow() + lease)
            .execution_options(synchronize_session=False)
        )


async def release(session: AsyncSession, *, worker: str, job_ids: list[int]) -> None:
    """Hand back jobs cut short at shutdown: pending again at once, for any worker to claim,
    and the interrupted attempt does not count against ``max_attempts`` (a deferral, like
    ``RetryLater``): the job did not fail, its worker stopped."""
    if not job_ids:
        return
    jobs = (
        await session.scalars(
            select(Job)
            .where(Job.id.in_(job_ids), Job.worker == worker, Job.state == "running")
            .with_for_update()
        )
    ).all()
    now = utcnow()
    for job in jobs:
        job.deferrals += 1
        error = f"handed back at shutdown: worker {worker} stopped during attempt {job.attempts}"
        await _requeue(session, job, now, now, error)
    if jobs:
        session.info.setdefault(ENQUEUED_KINDS, set()).update(job.kind for job in jobs)


async def replay(session: AsyncSession, job_id: int) -> Job | None:
    """A dead job runs again from scratch. Returns None when there is no such job; raises
    ``ValueError`` when it is not dead."""
    job = await session.get(Job, job_id, with_for_update=True)
    if job is None:
        return None
    if job.state != "dead":
        raise ValueError(f"job {job_id} is {job.state}, only dead jobs can be retried")
    now = utcnow()
    job.state = "pending"
    job.attempts = 0
    job.deferrals = 0
    job.run_at = now
    job.updated_at = now
    job.finished_at = None
    job.worker = None
    if job.deadline is not None and job.deadline <= now:
        job.deadline = None  # a replay gets the default attempts instead of an expired deadline
    await _requeue(session, job, now, now, job.last_error or "replayed")
    session.info.setdefault(ENQUEUED_KINDS, set()).add(job.kind)
    return job


async def dead_ids(session: AsyncSession) -> list[int]:
    return list((await session.scalars(select(Job.id).where(Job.state == "dead"))).all())


async def prune(session: AsyncSession, *, older_than: datetime) -> int:
    result = await session.execute(
        delete(Job).where(Job.state == "succeeded", Job.finished_at < older_than)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def depth(session: AsyncSession) -> list[tuple[str, str, int]]:
    """Jobs by kind and state, succeeded excluded (they are history, not queue)."""
    rows = await session.execute(
        select(Job.kind, Job.state, func.count())
        .where(Job.state != "succeeded")
        .group_by(Job.kind, Job.state)
    )
    return [(kind, state, int(count)) for kind, state, count in rows.all()]
