"""The background runtime that ``switchboard serve`` embeds and ``switchboard worker`` runs: one
worker and one scheduler per process."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from switchboard.connections.store import watcher_for
from switchboard.db import Database
from switchboard.http import Outbound
from switchboard.jobs.registry import Registry
from switchboard.jobs.schedules import Scheduler, ScheduleSpec
from switchboard.jobs.worker import Worker

if TYPE_CHECKING:
    from switchboard.config import Config

log = structlog.get_logger("switchboard.runtime")


class Runtime:
    def __init__(
        self,
        db: Database,
        config: Config,
        registry: Registry,
        schedules: list[ScheduleSpec],
        *,
        scheduler_tick: float = 0.5,
        schedules_of: Callable[[], list[ScheduleSpec]] | None = None,
    ) -> None:
        for module in config.settings.job_modules:
            # Its register(registry) adds its handlers (an absent module fails loudly).
            importlib.import_module(module).register(registry)
        # One set of outbound clients per process: the API's when there is one (breakers and
        # token caches are then shared with request handlers), else the runtime's own.
        shared = Outbound.for_database(db)
        self._owns_outbound = shared is None
        self.outbound = shared or Outbound(config, db)
        self.worker = Worker(db, config, registry, outbound=self.outbound)
        self.scheduler = Scheduler(
            db, schedules, tick=scheduler_tick, retention=config.settings.job_retention
        )
        # Connections change without a restart: the schedules follow (``schedules_of`` gives
        # them for the catalog as it is now).
        self._schedules_of = schedules_of
        self._config = config
        self._db = db
        self._changed = asyncio.Event()
        self._follow: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._owns_watcher = False

    async def start(self) -> None:
        await self.scheduler.start()
        await self.worker.start()
        if self._schedules_of is not None:
            self._unsubscribe = self._config.catalog.subscribe(lambda _: self._changed.set())
            self._follow = asyncio.create_task(self._follow_connections(), name="schedules")
            watcher, self._owns_watcher = watcher_for(self._config, self._db)
            if self._owns_watcher:  # a worker process: no API lifespan watches for it
                watcher.start()

    async def _follow_connections(self) -> None:
        assert self._schedules_of is not None
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self.scheduler.replace(self._schedules_of())
            except Exception as exc:
                log.warning("schedules_update_failed", error=str(exc)[:300])

    async def stop(self) -> None:
        """Graceful: no new claims or slots; running jobs finish within the grace period, and
        any still running after it are handed back (their leases expire at once)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
        if self._owns_watcher:
            await watcher_for(self._config, self._db)[0].stop()
        await self.scheduler.stop()
        await self.worker.stop()
        if self._owns_outbound:
            await self.outbound.aclose()
