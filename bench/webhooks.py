"""Task webhooks and reports (issue 8).

    .venv/bin/python -m bench.webhooks [--events 6000] [--streams 32] [--wrk-seconds 10]

1. The sandbox TODO sender (`switchboard.connectors.todo_webhooks.simulator`) replays a
   realistic stream (creates, edits, completions, deletions) against `switchboard serve` on
   SQLite; the stream is split by task over N concurrent senders so each task's events stay in
   order. Reports accepted
   (2xx) deliveries per second and the sender-side latency percentiles.
2. wrk (Debian's package) posts unique `created` events for the server's ceiling.
3. Report generation: one window for 10,000 users x 10 tasks (compute + 10,000 atomic files).
Every accepted delivery is committed (SQLite WAL, synchronous=NORMAL) before the 202.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from bench.common import append, percentile, start_server, wrk
from switchboard.connectors.todo_webhooks.simulator import TodoSender, random_events
from switchboard.db import Database, utcnow
from switchboard.models import Task
from switchboard.reports.tasks import write_window

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))
WRK_SCRIPT = """
local counter = 0
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
request = function()
  counter = counter + 1
  local body = string.format('{"event":"created","timestamp":"2025-04-01T10:00:00Z",'
    .. '"metadata":{"userId":"%d","id":"w%s-%d","content":"bench","isCompleted":false}}',
    counter % 1000, tid, counter)
  return wrk.format("POST", "/webhooks/todo", {["Content-Type"] = "application/json"}, body)
end
"""


async def sender_load(
    base: str, events: int, streams: int
) -> tuple[float, list[float], dict[int, int]]:
    stream = random_events(seed=7, users=1000)
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, event in zip(range(events), stream, strict=False):
        by_task[event["metadata"]["id"]].append(event)
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(streams)]
    for i, task_events in enumerate(by_task.values()):
        lanes[i % streams].extend(task_events)
    latencies: list[float] = []
    statuses: dict[int, int] = defaultdict(int)
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        sender = TodoSender(f"{base}/webhooks/todo", client=client)

        async def lane(items: list[dict[str, Any]]) -> None:
            for event in items:
                t0 = time.perf_counter()
                result = await sender.send(event)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[result.status or 0] += 1

        started = time.perf_counter()
        await asyncio.gather(*(lane(items) for items in lanes))
        elapsed = time.perf_counter() - started
    accepted = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return accepted / elapsed, latencies, dict(statuses)


async def report_generation(tmp: Path, users: int, per_user: int) -> tuple[float, int]:
    db = Database(f"sqlite+aiosqlite:///{tmp}/reports.db")
    await db.upgrade()
    end = datetime(2025, 4, 2, tzinfo=UTC)
    start = end - timedelta(days=1)
    now = utcnow()
    rows = []
    for u in range(users):
        for t in range(per_user):
            created = start - timedelta(hours=t) if t % 3 == 0 else start + timedelta(minutes=t + 1)
            rows.append(
                {
                    "connection": "todo",
                    "task_id": f"{u}-{t}",
                    "user_id": str(u),
                    "content": f"task {t} of user {u}",
                    "content_at": created,
                    "created_at": created,
                    "completed_at": created + timedelta(minutes=5) if t % 3 == 1 else None,
                    "deleted_at": None,
                    "updated_at": now,
                }
            )
    async with db.session() as session:
        for i in range(0, len(rows), 5000):
            await session.execute(insert(Task), rows[i : i + 5000])
    out = tmp / "reports-out"
    t0 = time.perf_counter()
    written = await write_window(db, out, start, end)
    elapsed = time.perf_counter() - t0
    await db.dispose()
    return elapsed, written


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=10_000)
    args = parser.parse_args()
    rows: list[list[str]] = []
    for access_log in (True, False):
        tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
        proc, base = start_server(
            tmp,
            '[connections.todo]\nkind = "todo_webhooks"\n',
            access_log=access_log,
            args=("--no-runtime",),
        )
        try:
            rate, lat, statuses = await sender_load(base, args.events, args.streams)
            label = "on" if access_log else "off"
            rows.append(
                [
                    f"sandbox TODO sender, {args.streams} streams, access log {label}",
                    f"{rate:,.0f}",
                    f"{percentile(lat, 50):.1f} ms",
                    f"{percentile(lat, 99):.1f} ms",
                    ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
                ]
            )
            print(rows[-1], flush=True)
            if shutil.which("wrk"):
                # 32 connections: the ceiling; 8: latency below saturation.
                for conns in (32, 8):
                    w = wrk(base, args.wrk_seconds, WRK_SCRIPT, tmp, connections=conns)
                    rows.append(
                        [
                            f"wrk -t2 -c{conns} unique creates, access log {label}",
                            w["rps"],
                            w["p50"],
                            w["p99"],
                            f"non-2xx: {w['non2xx']}",
                        ]
                    )
                    print(rows[-1], flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    tmp = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    elapsed, written = await report_generation(tmp, args.users, 10)
    rows.append(
        [
            f"report window, {args.users:,} users x 10 tasks",
            f"{written:,} files",
            f"{elapsed:.2f} s total",
            "",
            "compute + atomic writes",
        ]
    )
    print(rows[-1], flush=True)
    print(
        append(
            "Task webhooks and reports (bench/webhooks.py), SQLite, one API process",
            f"python -m bench.webhooks --events {args.events} --streams {args.streams}",
            ["load", "accepted/s", "p50", "p99", "answers"],
            rows,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
