"""Helpers for tests (importable: ``from tests.support import ...``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
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


REPO = Path(__file__).resolve().parents[1]
SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))


def switchboard_env(backend: Backend, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a ``switchboard`` subprocess on the test database, with fast job timings
    and the test job handlers importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SWITCHBOARD_") or k == "SWITCHBOARD_TEST_DATABASE_URL"
    }
    env.update(backend.env())
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "SWITCHBOARD_DATA_DIR": str(tmp_path),
            "SWITCHBOARD_LOG_FORMAT": "json",
            "SWITCHBOARD_JOB_POLL_INTERVAL": "0.05",
            "SWITCHBOARD_JOB_BACKOFF_BASE": "0.01",
            "SWITCHBOARD_JOB_BACKOFF_CAP": "0.05",
            "SWITCHBOARD_SHUTDOWN_GRACE_SECONDS": "1",
        }
    )
    env.update(extra)
    return env


class Process:
    """A switchboard subprocess whose output goes to a file (read it when a test fails)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [SWITCHBOARD, *args], env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


async def when_free(run: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """``run()`` (an on-demand sync), waiting while another sync of the connection runs: an app
    with its runtime starts every connection's first sync at once, which may still be going."""
    from switchboard.syncs.service import SyncBusy

    deadline = time.monotonic() + timeout
    while True:
        try:
            return await run()
        except SyncBusy:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


class _NoLifespan:
    """Serve an app whose lifespan the test already runs (uvicorn would run it a second time)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def serve_in_loop(app: Any) -> AsyncIterator[str]:
    """The app under test on a real loopback port, served in the test's own event loop (the
    app's database handles belong to it): its base URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            _NoLifespan(app), host="127.0.0.1", port=0, log_config=None, access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or task.done():
            raise RuntimeError("hub server did not start")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


NO_SCHEDULED_SYNC = "36500d"
"""A connection's sync interval in tests that count provider requests or events: the runtime
still syncs it once at start, but no slot follows within any test. Slots are aligned to the
epoch, so with the default 5 minutes a test that spans a :00 or :05 minute gets a second full
sync, whose requests land in the simulator's log, share the rate budget with the test's own
calls and emit their own events (its next slot is in 2069)."""


def no_scheduled_syncs(data: dict[str, Any]) -> dict[str, Any]:
    """A connections file's tables (``zero_config``'s, say) with :data:`NO_SCHEDULED_SYNC` for
    every connection that syncs."""
    for conn in data.get("connections", {}).values():
        if conn.get("kind") in ("hubspot", "mapped_crm", "pipedrive"):
            conn["sync_interval"] = NO_SCHEDULED_SYNC
    return data
