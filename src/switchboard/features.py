"""The composition root: which routers, background work, readiness checks and metric refreshers
the hub is made of. Each feature adds itself here, and nowhere else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter

from switchboard import metrics
from switchboard.config import Config
from switchboard.db import Database
from switchboard.jobs import queue
from switchboard.jobs.registry import registry
from switchboard.jobs.runtime import Runtime
from switchboard.jobs.schedules import ScheduleSpec

ReadinessCheck = Callable[[], Awaitable[tuple[Any, str | None]]]


def routers() -> list[APIRouter]:
    from switchboard.connections.endpoints import router as connections
    from switchboard.jobs.endpoints import router as jobs

    return [connections, jobs]


def schedules(config: Config) -> list[ScheduleSpec]:
    """Every periodic job this configuration asks for."""
    return []


def build_runtime(config: Config, db: Database) -> Runtime:
    return Runtime(db, config, registry, schedules(config))


def readiness_checks(config: Config, db: Database) -> dict[str, ReadinessCheck]:
    return {}


def metrics_refreshers(config: Config, db: Database) -> list[Callable[[], Awaitable[None]]]:
    async def queue_depth() -> None:
        async with db.read_session() as session:
            rows = await queue.depth(session)
        metrics.JOBS.clear()
        for kind, state, count in rows:
            metrics.JOBS.labels(kind, state).set(count)

    return [queue_depth]
