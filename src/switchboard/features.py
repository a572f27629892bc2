"""The composition root: which routers, background work, readiness checks and metric refreshers
the hub is made of. Each feature adds itself here, and nowhere else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import APIRouter

from switchboard.config import Config
from switchboard.db import Database

ReadinessCheck = Callable[[], Awaitable[tuple[Any, str | None]]]


class Runtime(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def routers() -> list[APIRouter]:
    from switchboard.connections.endpoints import router as connections

    return [connections]


def build_runtime(config: Config, db: Database) -> Runtime | None:
    return None


def readiness_checks(config: Config, db: Database) -> dict[str, ReadinessCheck]:
    return {}


def metrics_refreshers(config: Config, db: Database) -> list[Callable[[], Awaitable[None]]]:
    return []
