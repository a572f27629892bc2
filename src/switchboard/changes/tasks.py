"""The jobs of ``switchboard.changes``: the dispatcher (fan-out), deliveries, and pruning."""

from __future__ import annotations

from datetime import timedelta

import structlog

from switchboard.changes import service
from switchboard.jobs import JobContext
from switchboard.jobs.schedules import ScheduleSpec

log = structlog.get_logger("switchboard.changes")
PRUNE = "changes.prune"


async def dispatch(ctx: JobContext) -> None:
    """Fan out every sequenced event not fanned out yet, a batch per transaction."""
    attempts = len(ctx.config.settings.events_retry_schedule)
    while True:
        async with ctx.db.session() as session:
            more = await service.dispatch(session, attempts=attempts)
        if not more:
            return


def schedule() -> ScheduleSpec:
    return ScheduleSpec(PRUNE, PRUNE, every=timedelta(hours=1))


async def prune(ctx: JobContext) -> None:
    """Delete events and attempts older than ``SWITCHBOARD_EVENTS_RETENTION`` (30 days)."""
    cutoff = service.retention_cutoff(ctx.config.settings.events_retention)
    async with ctx.db.session() as session:
        events, attempts = await service.prune(session, older_than=cutoff)
    if events or attempts:
        log.info("change_log_pruned", events=events, attempts=attempts)
