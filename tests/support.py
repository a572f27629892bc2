"""Helpers for tests (importable: ``from tests.support import ...``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from switchboard.config import Settings

API_KEY = "test-key-0123456789"


class Backend:
    def __init__(self, url: str, schema: str | None) -> None:
        self.url = url
        self.schema = schema
        self.name = "sqlite" if url.startswith("sqlite") else "postgresql"

    def env(self) -> dict[str, str]:
        """Environment for a switchboard subprocess on this database."""
        env = {"SWITCHBOARD_DATABASE_URL": self.url}
        if self.schema:
            env["SWITCHBOARD_DATABASE_SCHEMA"] = self.schema
        return env


def make_settings(backend: Backend, tmp_path: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": backend.url,
        "database_schema": backend.schema,
        "data_dir": tmp_path,
        "config": tmp_path / "absent.toml",
        "log_format": "json",
        "access_log": False,
        "job_poll_interval": 0.02,
        "job_backoff_base": 0.01,
        "job_backoff_cap": 0.05,
        "job_lease_seconds": 5.0,
        "shutdown_grace_seconds": 2.0,
        "database_pool_size": 5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Bounded poll for background work (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Bounded async poll for background work."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
