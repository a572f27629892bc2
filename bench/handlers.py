"""Handlers for benchmark workers (SWITCHBOARD_JOB_MODULES=bench.handlers)."""

from switchboard.jobs import JobContext, Registry


async def noop(ctx: JobContext) -> None:
    return None


def register(registry: Registry) -> None:
    registry.add("bench.noop", noop)
