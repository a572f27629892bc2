"""Fixtures for job tests: a registry of the test's own handlers and in-process workers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from switchboard.config import Config
from switchboard.db import Database
from switchboard.jobs.registry import Registry
from switchboard.jobs.worker import Worker


class Recorder:
    def __init__(self) -> None:
        self.runs: list[tuple[int, int, dict[str, Any]]] = []  # (job id, attempt, payload)
        self.registry = Registry()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
async def start_worker(
    db: Database, config: Config, rec: Recorder
) -> AsyncIterator[Callable[..., Any]]:
    workers: list[Worker] = []

    async def start(**kw: Any) -> Worker:
        worker = Worker(db, config, rec.registry, **kw)
        await worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if not worker._stopping:
            await worker.stop()
