"""A worker stopped in the middle of a slow feed ingest hands the job back at the grace limit
and exits promptly (a real ``switchboard worker`` process)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from switchboard.connectors.xml_feed.simulator import EventFeedSimulator
from switchboard.db import Database
from switchboard.models import Job, SyncRun
from switchboard.syncs.registry import JOB_KIND
from switchboard.syncs.service import enqueue_sync
from tests.events.conftest import CONNECTION
from tests.support import Backend, Process, eventually, switchboard_env

GRACE = 1.0


@pytest.fixture
def stalled_feed(feed: EventFeedSimulator) -> Iterator[EventFeedSimulator]:
    # Half the document, then nothing for a minute: the ingest is mid-body when SIGTERM comes.
    feed.configure(mode="generated", base_plans=200, plans=3, zones=2, stall_ms=60_000)
    yield feed
    feed.configure(stall_ms=0)


async def sync_jobs(db: Database) -> list[Job]:
    async with db.read_session() as session:
        return list(await session.scalars(select(Job).where(Job.kind == JOB_KIND)))


async def test_sigterm_mid_ingest_hands_the_job_back_at_the_grace_limit(
    backend: Backend, tmp_path: Path, db: Database, stalled_feed: EventFeedSimulator, feed_url: str
) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text(
        f'[connections.{CONNECTION}]\nkind = "xml_feed"\nurl = "{feed_url}"\ninterval = "1h"\n'
    )
    async with db.session() as session:
        await enqueue_sync(session, CONNECTION)
    served = stalled_feed.served
    worker = Process(
        ["worker"],
        switchboard_env(
            backend,
            tmp_path,
            SWITCHBOARD_CONFIG=str(config),
            SWITCHBOARD_SHUTDOWN_GRACE_SECONDS=str(GRACE),
        ),
        cwd=tmp_path,
        log=tmp_path / "worker.log",
    )
    try:
        # The worker's start-up sync of the connection may queue a job of its own: follow the
        # one that is ingesting.
        running: list[int] = []

        async def ingesting() -> bool:
            running[:] = [j.id for j in await sync_jobs(db) if j.state == "running"]
            return bool(running) and stalled_feed.served > served

        await eventually(ingesting, timeout=30)
        stopped_at = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(timeout=GRACE + 10)
        took = time.monotonic() - stopped_at
    finally:
        worker.stop()
    assert worker.proc.returncode == 0, worker.output()[-3000:]
    # The margin is for a loaded test machine: the handler is cut at once, not after its feed.
    assert took < GRACE + 6, f"took {took:.1f}s to exit with a {GRACE}s grace"

    jobs = await sync_jobs(db)
    job = next(j for j in jobs if j.id == running[0])
    assert job.last_error is not None and "handed back at shutdown" in job.last_error
    # The sync is still owed exactly once: the interrupted job is pending again, or (when the
    # worker's start-up schedule queued a sync of the connection meanwhile) that newer pending
    # job supersedes it, as coalescing does.
    pending = [j for j in jobs if j.state == "pending"]
    assert len(pending) == 1 and pending[0].worker is None
    if job.state == "pending":
        assert job.attempts - job.deferrals == 0, "the interrupted attempt counted as a failure"
    else:
        assert job.state == "succeeded" and "superseded by a newer pending job" in job.last_error
    async with db.read_session() as session:
        runs = list(await session.scalars(select(SyncRun).where(SyncRun.connection == CONNECTION)))
    run = next(r for r in runs if r.outcome != "succeeded")
    assert run.outcome == "failed"
    assert run.detail is not None and run.detail["error"] == "interrupted: the process stopped"
