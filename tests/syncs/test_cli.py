"""``switchboard sync NAME`` in a subprocess, on the test database."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from switchboard.connectors.xml_feed.simulator import EventFeedSimulator
from switchboard.db import Database
from switchboard.syncs import service
from tests.support import SWITCHBOARD, Backend, Process, eventually, switchboard_env

pytestmark = pytest.mark.acceptance


def run_sync(
    backend: Backend, tmp_path: Path, feed_url: str, *args: str
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "switchboard.toml"
    config.write_text(
        f'[connections.events]\nkind = "xml_feed"\nurl = "{feed_url}"\n\n'
        '[connections.todo]\nkind = "todo_webhooks"\n'
    )
    env = switchboard_env(
        backend, tmp_path, SWITCHBOARD_CONFIG=str(config), SWITCHBOARD_HTTP_MAX_ATTEMPTS="1"
    )
    return subprocess.run(
        [SWITCHBOARD, "sync", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_sync_runs_in_the_foreground(
    backend: Backend, tmp_path: Path, feed_url: str, feed: EventFeedSimulator, db: Database
) -> None:
    done = run_sync(backend, tmp_path, feed_url, "events")
    assert done.returncode == 0, done.stderr
    assert "sync run 1 of events succeeded: 4 written, 0 skipped, 0 errors" in done.stdout
    assert "parsing" in done.stderr  # the progress lines

    feed.configure(unavailable_rate=1.0)
    failed = run_sync(backend, tmp_path, feed_url, "events", "--full")
    assert failed.returncode == 1
    assert "sync run 2 of events failed" in failed.stderr and "503" in failed.stderr
    async with db.read_session() as session:
        runs = await service.list_runs(session, "events", limit=10)
    assert [r.outcome for r in runs] == ["failed", "succeeded"]

    assert run_sync(backend, tmp_path, feed_url, "nope").returncode == 1
    refused = run_sync(backend, tmp_path, feed_url, "todo")
    assert refused.returncode == 1 and "nothing to sync" in refused.stderr


async def test_a_killed_sync_does_not_hold_the_connection(
    backend: Backend, tmp_path: Path, feed_url: str, feed: EventFeedSimulator, db: Database
) -> None:
    feed.configure(latency_ms=(30_000, 30_000))  # the fetch hangs: killed mid-run
    config = tmp_path / "switchboard.toml"
    config.write_text(f'[connections.events]\nkind = "xml_feed"\nurl = "{feed_url}"\n')
    env = switchboard_env(backend, tmp_path, SWITCHBOARD_CONFIG=str(config))
    doomed = Process(["sync", "events"], env, tmp_path, tmp_path / "doomed.log")

    async def running() -> bool:
        async with db.read_session() as session:
            runs = await service.list_runs(session, "events", limit=5)
        return any(r.outcome == "running" for r in runs)

    await eventually(running, timeout=30)
    doomed.kill()
    doomed.stop()
    feed.configure(latency_ms=(0, 0))

    done = run_sync(backend, tmp_path, feed_url, "events")
    assert done.returncode == 0, done.stderr
    async with db.read_session() as session:
        runs = await service.list_runs(session, "events", limit=10)
    assert [r.outcome for r in runs] == ["succeeded", "failed"]
    assert runs[1].detail == {"error": "abandoned"}
