"""The sync job handlers."""

from __future__ import annotations

from switchboard.http import Outbound
from switchboard.jobs import JobContext, RetryLater
from switchboard.syncs import service
from switchboard.syncs.registry import SyncContext


async def tick(ctx: JobContext) -> None:
    """A schedule slot: queue the connection's sync under its key (so it never overlaps a sync
    requested on demand)."""
    name = str(ctx.payload["connection"])
    entry = ctx.config.catalog.get(name)
    if entry is None or not entry.active:
        return  # deleted or paused since the schedule was stored
    async with ctx.db.session() as session:
        await service.enqueue_sync(session, name)


async def run(ctx: JobContext) -> None:
    name = str(ctx.payload["connection"])
    entry = ctx.config.catalog.get(name)
    if entry is None or not entry.active or entry.provider.syncer is None:
        return  # deleted or paused since it was queued
    conn = entry.settings
    # The API process's outbound clients (breaker state, budgets) when there is one; a
    # dedicated worker builds its own for the run.
    shared = Outbound.for_database(ctx.db)
    outbound = shared or Outbound(ctx.config, ctx.db)
    try:
        try:
            await service.execute(
                SyncContext(
                    name=name,
                    connection=conn,
                    config=ctx.config,
                    db=ctx.db,
                    outbound=outbound,
                    full=bool(ctx.payload.get("full", False)),
                    job_id=ctx.id,
                )
            )
        except service.SyncBusy as exc:
            raise RetryLater(5.0, reason=exc.message) from None
    finally:
        if shared is None:
            await outbound.aclose()
