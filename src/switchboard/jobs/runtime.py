"""The background runtime that ``switchboard serve`` embeds and ``switchboard worker`` runs: one
worker and one scheduler per process."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import structlog

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

    async def start(self) -> None:
        await self.scheduler.start()
        await self.worker.start()

    async def stop(self) -> None:
        """Graceful: no new claims or slots; running jobs finish within the grace period, and
        any still running after it are handed back (their leases expire at once)."""
        await self.scheduler.stop()
        await self.worker.stop()
        if self._owns_outbound:
            await self.outbound.aclose()
