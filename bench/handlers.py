"""Handlers for benchmark workers (SWITCHBOARD_JOB_MODULES=bench.handlers)."""

from switchboard.jobs import JobContext, handler


@handler("bench.noop")
async def noop(ctx: JobContext) -> None:
    return None
