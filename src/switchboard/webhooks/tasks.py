"""The scheduled pruning of the webhook delivery log (by age, then by total size)."""

from __future__ import annotations

from datetime import timedelta

import structlog

from switchboard.db import utcnow
from switchboard.jobs import JobContext
from switchboard.jobs.schedules import ScheduleSpec
from switchboard.webhooks import service

log = structlog.get_logger("switchboard.webhooks")
PRUNE = "webhooks.prune"


def schedule() -> ScheduleSpec:
    # Every minute: between two runs the log grows by at most a minute of deliveries, which the
    # rejected-delivery rate limits bound.
    return ScheduleSpec(PRUNE, PRUNE, every=timedelta(minutes=1))


async def prune(ctx: JobContext) -> None:
    settings = ctx.config.settings
    async with ctx.db.session() as session:
        pruned = await service.prune(
            session,
            older_than=utcnow() - settings.webhook_retention,
            max_bytes=settings.webhook_max_bytes,
        )
    if pruned.by_age or pruned.by_size:
        log.info("webhook_log_pruned", by_age=pruned.by_age, by_size=pruned.by_size)
