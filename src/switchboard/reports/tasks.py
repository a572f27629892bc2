"""The scheduled report: every window ``(start, end]`` of ``[reports] interval`` gets one file
per user, written exactly once in effect.

The cursor (``report_cursors``) holds the end of the last window whose files are all written; it
advances (compare-and-set) only after they are, in its own transaction. A crash in between
re-runs the window and rewrites the same file names: no gap, no duplicate. The job is keyed, so
one instance writes at a time across the cluster.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import update

from switchboard import metrics
from switchboard.changes import kinds as changes
from switchboard.db import Database, insert, utcnow
from switchboard.jobs import JobContext, RetryLater
from switchboard.jobs.schedules import ScheduleSpec, align
from switchboard.models import ReportCursor
from switchboard.reports import service

log = structlog.get_logger("switchboard.reports")
KIND = "reports.tasks"
CURSOR = "tasks"


def schedule(interval: timedelta) -> ScheduleSpec:
    return ScheduleSpec(KIND, KIND, every=interval)


async def cursor(db: Database, interval: timedelta, now: datetime) -> datetime:
    """The end of the last written window; the first run starts at the current boundary."""
    async with db.session() as session:
        await session.execute(
            insert(session, ReportCursor)
            .values(name=CURSOR, window_end=align(now, interval), updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = await session.get(ReportCursor, CURSOR)
        assert row is not None
        return row.window_end


async def write_window(db: Database, directory: Path, start: datetime, end: datetime) -> int:
    """Compute and write one window's files; returns how many users got one."""
    started = time.perf_counter()
    async with db.read_session() as session:
        reports = await service.compute(session, start, end)
    await asyncio.to_thread(service.write_files, directory, list(reports.values()), start, end)
    metrics.REPORT_DURATION.observe(time.perf_counter() - started)
    return len(reports)


async def run_scheduled(ctx: JobContext) -> None:
    settings = ctx.config.hub.reports
    interval, settle = settings.interval, settings.settle
    now = utcnow()
    start = await cursor(ctx.db, interval, now)
    while True:
        end = start + interval
        if end + settle > now:
            if end <= now:  # the window has ended but late events may still arrive
                raise RetryLater((end + settle - now).total_seconds(), "waiting for late events")
            return
        try:
            users = await write_window(ctx.db, settings.dir, start, end)
        except Exception:
            metrics.REPORT_RUNS.labels("failed").inc()
            raise
        async with ctx.db.session() as session:
            advanced = await session.execute(
                update(ReportCursor)
                .where(ReportCursor.name == CURSOR, ReportCursor.window_end == start)
                .values(window_end=end, updated_at=utcnow())
            )
            if advanced.rowcount:  # type: ignore[attr-defined]
                window = (service.iso(start), service.iso(end))
                await changes.report_created(session, *window, users, str(settings.dir))
        metrics.REPORT_RUNS.labels("succeeded").inc()
        log.info(
            "report_window_written", start=service.iso(start), end=service.iso(end), users=users
        )
        if not advanced.rowcount:  # type: ignore[attr-defined]
            return  # another instance moved the cursor: it owns the next windows
        start = end
