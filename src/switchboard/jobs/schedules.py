"""Named periodic schedules stored in the database.

Each slot fires exactly once across any number of processes: the scheduler that fires a slot
enqueues the slot's job and moves ``next_run_at`` past it in one transaction, holding the row
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite). After downtime, the
missed slots collapse into one run: the latest slot that has passed.

An ``immediate`` schedule also fires as soon as it is first stored, again whenever its
definition changes (its payload may carry a fingerprint of the settings it serves), and at
start while it has never fired; later slots continue from there. That decision is taken under
the same row lock, so it too happens once across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from croniter import croniter
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from switchboard import metrics
from switchboard.db import Database, insert, utcnow
from switchboard.jobs import queue
from switchboard.jobs.metrics import SCHEDULE_TICK
from switchboard.models import Schedule

log = structlog.get_logger("switchboard.schedules")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECHECK = timedelta(seconds=5)
"""Longest a scheduler trusts the earliest ``next_run_at`` it read before reading it again."""


def align(t: datetime, every: timedelta) -> datetime:
    """The latest multiple of ``every`` since the epoch at or before ``t`` (integer microseconds:
    float seconds since the epoch cannot hold 0.2 s steps exactly)."""
    return _EPOCH + (t - _EPOCH) // every * every


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule as the code defines it. ``every`` slots are aligned to the epoch (a 60 s
    schedule fires at :00 of every minute on every machine); ``cron`` is a 5-field expression
    in UTC. Jobs carry ``{"schedule": name, "slot": iso}`` in their payload, use the key
    ``schedule:<name>`` (so runs of one schedule never overlap) and coalesce by default (a
    slow run does not pile up a backlog). ``immediate``: fire at once when first stored, when
    the definition changes, and while it has never fired (e.g. a sync with no run yet)."""

    name: str
    kind: str
    every: timedelta | None = None
    cron: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    coalesce: bool = True
    immediate: bool = False

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"schedule {self.name!r}: give exactly one of every= or cron=")
        if self.every is not None and self.every.total_seconds() <= 0:
            raise ValueError(f"schedule {self.name!r}: every= must be positive")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"schedule {self.name!r}: invalid cron {self.cron!r}")

    def next_after(self, t: datetime) -> datetime:
        if self.every is not None:
            return self.latest_at_or_before(t) + self.every
        nxt: datetime = croniter(self.cron, t).get_next(datetime)
        return nxt.astimezone(UTC)

    def latest_at_or_before(self, t: datetime) -> datetime:
        if self.every is not None:
            return align(t, self.every)
        prev: datetime = croniter(self.cron, t + timedelta(microseconds=1)).get_prev(datetime)
        return prev.astimezone(UTC)

    def same_definition(self, row: Schedule) -> bool:
        interval = self.every.total_seconds() if self.every is not None else None
        return (
            row.kind == self.kind
            and row.interval_seconds == interval
            and row.cron == self.cron
            and row.payload == self.payload
        )


class Scheduler:
    def __init__(
        self, db: Database, specs: list[ScheduleSpec], *, tick: float = 0.5, retention: timedelta
    ) -> None:
        self.db = db
        self.specs = {spec.name: spec for spec in specs}
        self.tick_interval = tick
        self.retention = retention
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._next_prune = 0.0
        # The earliest ``next_run_at`` of this process's schedules as last read (None: read it
        # at the next tick): until then a tick needs no query at all.
        self._next_due: datetime | None = None

    async def replace(self, specs: list[ScheduleSpec]) -> None:
        """Serve these schedules from now on (connections were added, changed, paused or
        removed): new and changed ones are stored; a dropped one is no longer fired by this
        process (deleting a connection deletes its schedule's row)."""
        new = {spec.name: spec for spec in specs}
        if new == self.specs:
            return
        # Only what changed is written: with a thousand connections, storing every definition
        # again on each change would hold the writer for seconds per connection created.
        changed = [spec for name, spec in new.items() if self.specs.get(name) != spec]
        self.specs = new
        await self.register(changed)

    async def register(self, specs: list[ScheduleSpec] | None = None) -> None:
        """Store this process's schedule definitions, or just ``specs`` among them (insert new
        ones, update changed ones)."""
        now = utcnow()
        self._next_due = None  # a stored definition may be due sooner than what was read
        async with self.db.session() as session:
            for spec in self.specs.values() if specs is None else specs:
                interval = spec.every.total_seconds() if spec.every else None
                await session.execute(
                    insert(session, Schedule)
                    .values(
                        name=spec.name,
                        kind=spec.kind,
                        payload=spec.payload,
                        interval_seconds=interval,
                        cron=spec.cron,
                        next_run_at=now if spec.immediate else spec.next_after(now),
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["name"])
                )
                row = await session.get(Schedule, spec.name, with_for_update=True)
                if row is None:
                    continue
                if not spec.same_definition(row):
                    row.kind = spec.kind
                    row.payload = spec.payload
                    row.interval_seconds = interval
                    row.cron = spec.cron
                    soon = now if spec.immediate else spec.next_after(now)
                    row.next_run_at = min(row.next_run_at, soon)
                    row.updated_at = now
                elif spec.immediate and row.last_slot is None and row.next_run_at > now:
                    row.next_run_at = now
                    row.updated_at = now

    async def tick(self) -> int:
        """Fire every due slot of this process's schedules; returns how many fired.

        The due slots are fired in one statement per table (the jobs, then the schedules):
        a thousand connections sharing a 5-minute slot cost one transaction, not a thousand
        round trips under the writer lock."""
        if not self.specs:
            return 0
        now = utcnow()
        if not await self._anything_due(now):
            return 0
        self._next_due = None
        fired: list[str] = []
        async with self.db.session() as session:
            due = (
                await session.execute(
                    select(Schedule.name, Schedule.next_run_at)
                    .where(Schedule.name.in_(list(self.specs)), Schedule.next_run_at <= now)
                    .order_by(Schedule.name)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            jobs: list[queue.NewJob] = []
            rows: list[dict[str, Any]] = []
            for name, next_run_at in due:
                spec = self.specs.get(name)
                if spec is None:  # dropped by replace() while this tick waited for the rows
                    continue
                slot = max(spec.latest_at_or_before(now), next_run_at)
                jobs.append(
                    queue.NewJob(
                        spec.kind,
                        {**spec.payload, "schedule": spec.name, "slot": slot.isoformat()},
                        key=f"schedule:{spec.name}",
                        coalesce=spec.coalesce,
                    )
                )
                rows.append(
                    {
                        "name": name,
                        "last_slot": slot,
                        "next_run_at": spec.next_after(slot),
                        "updated_at": now,
                    }
                )
                fired.append(name)
            await queue.enqueue_many(session, jobs)
            if rows:
                await session.execute(update(Schedule), rows)  # by primary key, one statement
            if self.retention and now.timestamp() >= self._next_prune:
                self._next_prune = now.timestamp() + 60
                await queue.prune(session, older_than=now - self.retention)
        for name in fired:  # counted once committed: a rolled-back slot did not fire
            metrics.SCHEDULE_FIRES.labels(name).inc()
        return len(fired)

    async def _anything_due(self, now: datetime) -> bool:
        """Whether a tick has work, read-only: most ticks find nothing due, and on SQLite a
        write transaction would hold the one writer slot (and this process's writer queue).

        The earliest ``next_run_at`` read is kept, so ticks before it cost no query; it is read
        again at least every :data:`RECHECK` (another process may have stored an earlier one:
        its definition changed there first). The read asks for the rows due within that
        horizon, not for this process's names: sending a thousand names each time cost more
        than firing their slots. Rows of schedules this process does not serve (a paused
        connection's) are left aside here."""
        if self.retention and now.timestamp() >= self._next_prune:
            return True
        if self._next_due is not None and now < self._next_due:
            return False
        horizon = now + RECHECK
        async with self.db.read_session() as session:
            rows = (
                await session.execute(
                    select(Schedule.name, Schedule.next_run_at).where(
                        Schedule.next_run_at <= horizon
                    )
                )
            ).all()
        earliest = min((at for name, at in rows if name in self.specs), default=horizon)
        if earliest <= now:
            return True
        self._next_due = earliest
        return False

    async def start(self) -> None:
        await self.register()
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                fired = await self.tick()
                result = "fired" if fired else "idle"
                SCHEDULE_TICK.labels(result).observe(time.perf_counter() - started)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("schedule_tick_failed", error=str(exc)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.tick_interval)
