"""Helpers for outbound tests: configs, Outbound instances torn down after the test, and a
recorder of what a fake provider received. The fake providers are real ASGI apps served on
loopback by the ``asgi_server`` fixture."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from switchboard.config import Config, HubConfig, Settings
from switchboard.db import Database
from switchboard.http import Clock, Outbound, RetryPolicy

POLICY = RetryPolicy(
    max_attempts=4, backoff_base=0.5, backoff_cap=30, request_max_wait=10, job_max_wait=60
)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


@dataclass
class Recorder:
    seen: list[Seen] = field(default_factory=list)

    async def record(self, request: Request) -> Seen:
        item = Seen(
            request.method,
            request.url.path,
            dict(request.headers),
            await request.body(),
            time.monotonic(),
        )
        self.seen.append(item)
        return item

    def paths(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


def hub(connections: dict[str, Any]) -> HubConfig:
    return HubConfig.model_validate({"connections": connections})


class Outbounds:
    """Creates ``Outbound`` objects (and extra ``Database`` objects standing for other
    processes) and closes them all at teardown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._outbounds: list[Outbound] = []
        self._dbs: list[Database] = []

    def database(self) -> Database:
        """Another connection pool on the same (already migrated) database: another process."""
        s = self.settings
        db = Database(s.database_url, schema=s.database_schema, pool_size=5)
        self._dbs.append(db)
        return db

    def make(
        self,
        connections: dict[str, Any],
        db: Database | None,
        *,
        clock: Clock | None = None,
        policy: RetryPolicy = POLICY,
        **kwargs: Any,
    ) -> Outbound:
        config = Config(self.settings, hub(connections), None)
        outbound = Outbound(config, db, clock=clock, policy=policy, **kwargs)
        self._outbounds.append(outbound)
        return outbound

    async def aclose(self) -> None:
        for outbound in self._outbounds:
            await outbound.aclose()
        for db in self._dbs:
            await db.dispose()
