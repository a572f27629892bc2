"""The worker: claims due jobs, runs handlers concurrently, renews leases, records outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from switchboard import metrics
from switchboard.db import Database, utcnow
from switchboard.errors import RetryLater, TerminalError, TransientError
from switchboard.http import Outbound
from switchboard.jobs import queue
from switchboard.jobs.registry import JobContext, OutcomeWrite, Registry
from switchboard.models import Job

if TYPE_CHECKING:
    from switchboard.config import Config

log = structlog.get_logger("switchboard.jobs")

_MAX_ERROR = 2000
_UNWIND_SECONDS = 2.0


class Worker:
    def __init__(
        self,
        db: Database,
        config: Config,
        registry: Registry,
        *,
        concurrency: int | None = None,
        name: str | None = None,
        outbound: Outbound | None = None,
    ) -> None:
        s = config.settings
        self.db = db
        self.config = config
        self.registry = registry
        self.outbound = outbound
        self.concurrency = concurrency or s.worker_concurrency
        self.poll_interval = s.job_poll_interval
        self.lease = timedelta(seconds=s.job_lease_seconds)
        self.backoff = queue.Backoff(base=s.job_backoff_base, cap=s.job_backoff_cap)
        self.grace = s.shutdown_grace_seconds
        self.max_attempts = s.job_max_attempts
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # Job id -> the task running it (the jobs of a batch share one task).
        self._running: dict[int, asyncio.Task[None]] = {}
        self._busy = 0  # slots taken: one per running handler call (a batch is one)
        self._running_per_kind: Counter[str] = Counter()  # handler calls (batches) per kind
        # Per-kind caps (Registry.handler(concurrency=...)), fixed for the worker's life.
        self._caps = {
            kind: cap
            for kind in registry.kinds
            if (cap := registry.concurrency(kind, config)) is not None
        }
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._next_reap = 0.0
        self._idle = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._successes = _SuccessBatcher(db, self.name)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        _wakers.add(self)
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name=f"jobs-claim-{self.name}"),
            asyncio.create_task(self._heartbeat_loop(), name=f"jobs-heartbeat-{self.name}"),
        ]
        log.info("worker_started", worker=self.name, kinds=self.registry.kinds)

    async def stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace period; give the rest back."""
        self._stopping = True
        self.wake()
        claim_loop, heartbeat = self._tasks
        await claim_loop
        running = list(self._running.values())
        if running:
            _, unfinished = await asyncio.wait(running, timeout=self.grace)
            for task in unfinished:
                task.cancel()  # each hands its job back as it unwinds (_execute)
            if unfinished:
                # A handler may take a moment to unwind (a rollback, a thread to stop), but
                # shutdown must not wait on it: past this bound its job is handed back here.
                _, stuck = await asyncio.wait(unfinished, timeout=_UNWIND_SECONDS)
                if stuck:
                    ids = [job_id for job_id, task in self._running.items() if task in stuck]
                    log.warning("jobs_not_unwound", worker=self.name, job_ids=ids)
                    await self._release(ids)
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        await self._successes.close()
        _wakers.discard(self)
        log.info("worker_stopped", worker=self.name)

    def wake(self, kinds: Iterable[str] | None = None) -> None:
        """Thread-safe: a commit in another thread (or event loop) may wake this worker.

        Given the kinds just enqueued, a worker that could not claim any of them now (not its
        kinds, or kinds at their cap, whose running jobs wake it when they finish) stays asleep.
        """
        if kinds is not None and not any(self._may_claim(kind) for kind in kinds):
            return
        try:
            same_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self._wake.set()
        elif self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    # --- loops ----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        kinds = self.registry.kinds
        full: set[str] = set()  # kinds whose last claim took all the room it had: more may be due
        while not self._stopping:
            if full and not self._half_room(full):
                # Under a backlog, claim in batches (one transaction for many jobs) rather than
                # one job per freed slot; the wait is bounded by the poll interval.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._until_half_room(full), timeout=self.poll_interval)
            free = self.concurrency - self._busy
            if free > 0:
                self._wake.clear()
                try:
                    full = await self._claim(kinds, free)
                except (SQLAlchemyError, OSError) as exc:
                    log.warning("claim_failed", worker=self.name, error=str(exc)[:300])
                    await asyncio.sleep(min(1.0, self.poll_interval * 10))
                    continue
                except Exception:  # the loop must outlive any bug; the error is logged
                    log.exception("claim_loop_error", worker=self.name)
                    await asyncio.sleep(1.0)
                    continue
                if full:
                    continue  # maybe more are due; the loop waits for room first
            if self._stopping:
                break
            if self.concurrency - self._busy <= 0:
                # Every slot is busy: only a finishing job (which sets the event) can change
                # that. Commits that enqueue also set it; without this the loop would spin.
                self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)

    def _half_room(self, kinds: set[str]) -> bool:
        """Whether one of ``kinds`` has room for at least half a batch: half the worker's slots,
        or half its own cap for a capped kind."""
        free = self.concurrency - self._busy
        for kind in kinds:
            cap = self._caps.get(kind)
            if cap is None:
                if free >= (self.concurrency + 1) // 2:
                    return True
            elif free > 0 and cap - self._running_per_kind[kind] >= (cap + 1) // 2:
                return True
        return False

    async def _until_half_room(self, kinds: set[str]) -> None:
        while not self._half_room(kinds):
            await self._wake.wait()
            self._wake.clear()

    def _may_claim(self, kind: str) -> bool:
        if self.registry.get(kind) is None:
            return False
        cap = self._caps.get(kind)
        return cap is None or self._running_per_kind[kind] < cap

    def _rooms(self, kinds: list[str]) -> dict[str, int]:
        """The kinds this worker may claim now: at most ``room`` more jobs of each capped kind
        (kinds at their cap are left out; their running jobs wake the loop when they finish)."""
        rooms: dict[str, int] = {}
        for kind in kinds:
            cap = self._caps.get(kind)
            if cap is None:
                rooms[kind] = self.concurrency
            elif cap > self._running_per_kind[kind]:
                rooms[kind] = cap - self._running_per_kind[kind]
        return rooms

    async def _claim(self, kinds: list[str], free: int) -> set[str]:
        """Claim what may run now; returns the kinds that took all the room they had."""
        now = time.monotonic()
        reap_now = now >= self._next_reap
        rooms = self._rooms(kinds)
        if not rooms and not reap_now:
            return set()
        if self._idle and not reap_now:
            # Idle: look before taking a write transaction (on SQLite it would hold the one
            # writer slot, and this process's writer queue, every poll interval for nothing).
            async with self.db.read_session() as session:
                if not await queue.anything_due(session, kinds=list(rooms)):
                    return set()
        async with self.db.session() as session:
            if reap_now:
                self._next_reap = now + max(self.lease.total_seconds() / 4, self.poll_interval)
                reaped = await queue.reap(session, default_max_attempts=self.max_attempts)
                if reaped:
                    log.warning("jobs_reaped", count=reaped)
            batches = await queue.claim_batches(
                session,
                worker=self.name,
                kinds=list(rooms),
                limit=free,
                limits=rooms,
                lease=self.lease,
                sizes={kind: self.registry.batch_size(kind) for kind in rooms},
            )
        self._idle = not batches
        claimed: Counter[str] = Counter()
        for jobs in batches:
            kind = jobs[0].kind
            claimed[kind] += 1
            self._busy += 1
            self._running_per_kind[kind] += 1
            task = asyncio.create_task(self._execute(jobs))
            for job in jobs:
                self._running[job.id] = task
        return {kind for kind, n in claimed.items() if n >= rooms[kind] or len(batches) == free}

    async def _heartbeat_loop(self) -> None:
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            if not self._running:
                continue
            try:
                async with self.db.session() as session:
                    await queue.heartbeat(
                        session, worker=self.name, job_ids=list(self._running), lease=self.lease
                    )
            except (SQLAlchemyError, OSError) as exc:
                log.warning("heartbeat_failed", worker=self.name, error=str(exc)[:300])

    # --- one job --------------------------------------------------------------------------

    async def _execute(self, jobs: list[Job]) -> None:
        """Run one handler call: a job, or a batch of jobs of one kind (each its own outcome)."""
        kind = jobs[0].kind
        size = self.registry.batch_size(kind)
        if size > 1:
            metrics.JOB_BATCH_FILL.labels(kind).observe(len(jobs) / size)
        ctxs = []
        for job in jobs:
            due = max(job.run_at, job.created_at)
            if job.started_at is not None:
                lag = (job.started_at - due).total_seconds()
                metrics.JOB_START_LATENCY.labels(kind).observe(max(lag, 0.0))
            ctxs.append(
                JobContext(
                    id=job.id,
                    kind=kind,
                    key=job.key,
                    payload=job.payload,
                    attempt=job.attempts,
                    db=self.db,
                    config=self.config,
                    outbound=self.outbound,
                    batch=job.batch,
                )
            )
        handler = self.registry.batch(kind)
        started = time.perf_counter()
        outcomes = dict.fromkeys((ctx.id for ctx in ctxs), "lost")
        bound = log.bind(job_id=jobs[0].id, kind=kind, attempt=jobs[0].attempts, batch=len(jobs))
        try:
            try:
                await handler(ctxs)
            except asyncio.CancelledError:
                # Shutdown ran out of grace: give the jobs back for another worker to reclaim.
                await self._release([ctx.id for ctx in ctxs])
                outcomes = dict.fromkeys(outcomes, "released")
                raise
            except Exception as exc:
                if not isinstance(exc, RetryLater | TerminalError | TransientError):
                    bound.exception("job_error")  # a handler bug: retried like any failure
                for ctx in ctxs:
                    if ctx.error is None:
                        ctx.error = exc
            outcomes = await self._record(ctxs)
        finally:
            elapsed = time.perf_counter() - started
            for ctx in ctxs:
                metrics.JOB_DURATION.labels(kind, outcomes[ctx.id]).observe(elapsed)
                self._running.pop(ctx.id, None)
            self._busy -= 1
            self._running_per_kind[kind] -= 1
            self._wake.set()
        for ctx in ctxs:
            if outcomes[ctx.id] == "dead":
                metrics.JOBS_DEAD.labels(kind).inc()
                log.warning("job_dead", job_id=ctx.id, kind=kind, attempt=ctx.attempt)
            elif outcomes[ctx.id] == "retry":
                metrics.JOB_RETRIES.labels(kind).inc()

    async def _record(self, ctxs: list[JobContext]) -> dict[int, str]:
        """Record each job's outcome: successes through the success batcher, failures in one
        transaction (a 429 on a batch request retries all of its jobs)."""
        done = [ctx for ctx in ctxs if ctx.error is None]
        failed = [ctx for ctx in ctxs if ctx.error is not None]
        successes, failures = await asyncio.gather(
            asyncio.gather(*(self._record_success(ctx) for ctx in done)),
            self._record_failures(failed),
        )
        return dict(zip((ctx.id for ctx in done), successes, strict=True)) | failures

    async def _record_failures(self, ctxs: list[JobContext]) -> dict[int, str]:
        if not ctxs:
            return {}
        if len(ctxs) > 1:
            try:
                now = utcnow()
                async with self.db.session() as session:
                    states = [await self._fail(session, ctx, now) for ctx in ctxs]
            except Exception as exc:  # one job's bad write must not lose the others' outcomes
                log.warning("job_failures_batch_unrecorded", error=str(exc)[:300])
            else:
                return {ctx.id: _outcome(state) for ctx, state in zip(ctxs, states, strict=True)}
        outcomes: dict[int, str] = {}
        for ctx in ctxs:
            try:
                async with self.db.session() as session:
                    outcomes[ctx.id] = _outcome(await self._fail(session, ctx))
            except Exception as exc:
                log.warning("job_failure_unrecorded", job_id=ctx.id, error=str(exc)[:300])
                outcomes[ctx.id] = "lost"
        return outcomes

    async def _fail(
        self, session: AsyncSession, ctx: JobContext, now: datetime | None = None
    ) -> str | None:
        exc = ctx.error
        assert exc is not None
        retry_in: float | None = None
        terminal = deferred = False
        error = _describe(exc)
        if isinstance(exc, RetryLater):
            retry_in, deferred, error = exc.seconds, True, exc.reason
        elif isinstance(exc, TerminalError):
            terminal = True
        elif isinstance(exc, TransientError):
            retry_in = exc.retry_after
        state = await queue.fail(
            session,
            ctx.id,
            worker=self.name,
            attempt=ctx.attempt,
            error=error,
            terminal=terminal,
            retry_in=retry_in,
            deferred=deferred,
            backoff=self.backoff,
            default_max_attempts=self.max_attempts,
            now=now,
        )
        for write in ctx.outcome_writes:
            await write(session, state)
        return state

    async def _record_success(self, ctx: JobContext) -> str:
        try:
            owned = await self._successes.record(ctx.id, ctx.attempt, ctx.outcome_writes)
        except Exception as exc:
            # The effect happened but is unrecorded: the lease lapses and the job runs again
            # (at-least-once, which is why handlers must be idempotent).
            log.warning("job_success_unrecorded", job_id=ctx.id, error=str(exc)[:300])
            return "lost"
        return "succeeded" if owned else "lost"

    async def _release(self, job_ids: list[int]) -> None:
        try:
            async with self.db.session() as session:
                await queue.release(session, worker=self.name, job_ids=job_ids)
        except (SQLAlchemyError, OSError) as exc:
            # The leases still lapse: the jobs are reaped then, only later.
            log.warning("job_release_failed", job_ids=job_ids, error=str(exc)[:300])


def _outcome(state: str | None) -> str:
    return "lost" if state is None else "dead" if state == "dead" else "retry"


class _SuccessBatcher:
    """Records successes of concurrently finishing jobs in one transaction per batch.

    A no-op job costs two write transactions otherwise (claim, success); at a few hundred jobs
    per second the success writes dominate, and they batch perfectly: one
    ``UPDATE ... WHERE (id, attempts) IN (...)``, plus each job's outcome writes
    (:meth:`JobContext.on_outcome`). A batch that fails is retried one job per transaction, so
    one job's failing write does not lose the others' outcomes.
    """

    def __init__(self, db: Database, worker: str) -> None:
        self.db = db
        self.worker = worker
        self._waiting: list[_Success] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, job_id: int, attempt: int, writes: list[OutcomeWrite]) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Success(job_id, attempt, writes, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._commit(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0].future, exc=exc)
                    continue
                for one in batch:
                    try:
                        await self._commit([one])
                    except Exception as exc:  # handed to the waiter, which reports it
                        _settle(one.future, exc=exc)

    async def _commit(self, batch: list[_Success]) -> None:
        async with self.db.session() as session:
            owned = await queue.succeed_many(
                session, [(s.job_id, s.attempt) for s in batch], worker=self.worker
            )
            for success in batch:
                state = "succeeded" if success.job_id in owned else None
                for write in success.writes:
                    await write(session, state)
        for success in batch:
            _settle(success.future, result=success.job_id in owned)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


@dataclass(frozen=True)
class _Success:
    job_id: int
    attempt: int
    writes: list[OutcomeWrite]
    future: asyncio.Future[bool]


def _settle(
    future: asyncio.Future[bool], *, result: bool = False, exc: BaseException | None = None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:_MAX_ERROR]


# --- waking local workers after a commit that enqueued jobs ----------------------------------

_wakers: weakref.WeakSet[Worker] = weakref.WeakSet()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    kinds = session.info.pop(queue.ENQUEUED_KINDS, None)
    if kinds:
        for worker in list(_wakers):
            worker.wake(kinds)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(queue.ENQUEUED_KINDS, None)
