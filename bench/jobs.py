"""Durable jobs: no-op throughput and enqueue→start latency, SQLite and PostgreSQL, 1 and 2
worker processes (real `switchboard worker` subprocesses).

    .venv/bin/python -m bench.jobs [--jobs 5000] [--pg postgresql+asyncpg://postgres@127.0.0.1/test]

Throughput: N no-op jobs committed at once while the workers are idle; jobs/s from the commit
until the last one is recorded as succeeded. Latency: with idle workers, single jobs enqueued
every 20 ms; started_at - created_at from the job rows (the poll interval is the default 100 ms,
and a commit in another process is only seen at the next poll).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, insert, select, text

from bench.common import append, percentile
from switchboard.db import Database, utcnow
from switchboard.jobs import enqueue
from switchboard.models import Job

REPO = Path(__file__).resolve().parents[1]
SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))


def start_workers(n: int, env: dict[str, str], tmp: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        log = open(tmp / f"worker{i}.log", "wb")  # noqa: SIM115 - lives as long as the process
        procs.append(
            subprocess.Popen(
                [SWITCHBOARD, "worker"], env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT
            )
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logs = [(tmp / f"worker{i}.log").read_text(errors="replace") for i in range(n)]
        if all("worker_started" in text for text in logs):
            return procs
        time.sleep(0.05)
    raise RuntimeError("workers did not start")


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)


async def count_succeeded(db: Database) -> int:
    async with db.read_session() as session:
        return int(await session.scalar(select(func.count()).where(Job.state == "succeeded")) or 0)


async def run_case(url: str, schema: str | None, workers: int, jobs: int) -> list[str]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    db = Database(url, schema=schema, pool_size=4)
    await db.upgrade()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_DATABASE_URL": url,
            "SWITCHBOARD_JOB_MODULES": "bench.handlers",
            "SWITCHBOARD_LOG_FORMAT": "json",
            "SWITCHBOARD_LOG_LEVEL": "warning",
            "PYTHONPATH": str(REPO),
        }
    )
    if schema:
        env["SWITCHBOARD_DATABASE_SCHEMA"] = schema
    # "worker_started" is logged at info; keep the level at info just for start detection.
    env["SWITCHBOARD_LOG_LEVEL"] = "info"
    procs = start_workers(workers, env, tmp)
    try:
        # Throughput: one commit of N jobs, then wait until all are done.
        now = utcnow()
        rows = [
            {
                "kind": "bench.noop",
                "payload": {"i": i},
                "state": "pending",
                "coalescing": False,
                "attempts": 0,
                "deferrals": 0,
                "run_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(jobs)
        ]
        async with db.session() as session:
            await session.execute(insert(Job), rows)
        started = time.perf_counter()
        while await count_succeeded(db) < jobs:
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        throughput = jobs / elapsed

        # Latency when idle: one job at a time.
        async with db.session() as session:
            await session.execute(text("DELETE FROM jobs"))
        for _ in range(200):
            async with db.session() as session:
                await enqueue(session, "bench.noop", {})
            await asyncio.sleep(0.02)
        while await count_succeeded(db) < 200:
            await asyncio.sleep(0.02)
        async with db.read_session() as session:
            done = (await session.scalars(select(Job))).all()
        lags = [(j.started_at - j.created_at).total_seconds() * 1000 for j in done if j.started_at]
    finally:
        stop_workers(procs)
        await db.dispose()
    backend = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    return [
        backend,
        str(workers),
        str(jobs),
        f"{throughput:,.0f}",
        f"{percentile(lags, 50):.1f}",
        f"{percentile(lags, 99):.1f}",
    ]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "SWITCHBOARD_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    rows = []
    for workers in (1, 2):
        tmp = Path(tempfile.mkdtemp(prefix="bench-sqlite-"))
        rows.append(await run_case(f"sqlite+aiosqlite:///{tmp}/bench.db", None, workers, args.jobs))
        print(rows[-1], flush=True)
        if not args.skip_pg:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            try:
                rows.append(await run_case(args.pg, schema, workers, args.jobs))
                print(rows[-1], flush=True)
            finally:
                db = Database(args.pg)
                async with db.session() as session:
                    await session.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                await db.dispose()
    print(
        append(
            "Durable jobs (bench/jobs.py)",
            f"python -m bench.jobs --jobs {args.jobs}",
            [
                "database",
                "worker processes",
                "jobs",
                "no-op jobs/s",
                "start p50 ms",
                "start p99 ms",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
