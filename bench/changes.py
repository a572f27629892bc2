"""Outbound change events (issue 22): fan-out, delivery throughput, lag, and an outage.

    .venv/bin/python -m bench.changes [--events 10000] [--subscriptions 3] [--workers 1]
        [--database-url postgresql+asyncpg://...] [--outage 60] [--schedule 0,5,300,...]

An API-only ``switchboard serve`` (subscriptions are made through its API, at the sandbox's
webhook receiver, ``switchboard sandbox --only receiver`` in a process of its own, so that the
bench measures the hub, not the receiver's share of this process), ``--workers`` ``switchboard
worker`` processes, and this process writing ``--events`` change events straight into the
database in transactions of 100 (as a sync page would: 1,000 objects, ten events each), noting
when each commit returned. The burst's row also gives the CPU each process spent per delivery
(from ``/proc``): where the time goes on a machine whose cores they share.

1. Healthy receiver: deliveries/s (events x subscriptions, from the first commit to the last
   delivery), change-to-delivery lag p50/p99 (commit returned -> the receiver got it).
2. Trickle: ``--trickle`` events/s for 10 s (100 by default: 300 deliveries/s, under the
   ceiling), lag p50/p99 — the delay a change sees when the queue is not a backlog.
3. ``--outage`` seconds of a receiver answering 500 to everything while 2,000 more events are
   written, then healthy again: seconds until every event reached every subscription, and the
   checks of the issue: every (event, subscription) delivered, never under two different
   ``webhook-id`` values, and each subscription got the events of each object in ``seq``
   order. With the default (Svix) schedule the retries after a 60 s outage come at the 5 min
   step, so this part takes about six minutes; ``--schedule`` shortens it.

Issue targets: >= 1,000 deliveries/s on SQLite with 1 worker, >= 2,000/s on PostgreSQL with
2 workers, lag p99 <= 500 ms. Appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from bench.common import SWITCHBOARD, append, free_port, launch, percentile, start_sandbox, stop
from switchboard.changes import service
from switchboard.db import Database

BATCH = 100
WORKER = [SWITCHBOARD]
if os.environ.get("BENCH_PROFILE_WORKER"):  # a cProfile of the worker, written at its exit
    WORKER = [
        sys.executable,
        "-c",
        "import cProfile, sys; from switchboard.cli import main; sys.argv[0] = 'switchboard'; "
        f"cProfile.run('main()', {os.environ['BENCH_PROFILE_WORKER']!r})",
    ]
OBJECTS = 1000


def env_for(tmp: Path, url: str, schedule: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_DATABASE_URL": url,
            "SWITCHBOARD_DATA_DIR": str(tmp),
            "SWITCHBOARD_CONFIG": str(tmp / "switchboard.toml"),
            "SWITCHBOARD_LOG_FORMAT": "json",
            "SWITCHBOARD_ACCESS_LOG": "false",
            "SWITCHBOARD_EVENTS_RETRY_SCHEDULE": schedule,
            "SWITCHBOARD_WORKER_CONCURRENCY": "64",
        }
    )
    return env


async def write_events(
    db: Database, count: int, start: int, *, batch_size: int = BATCH, per_second: float = 0
) -> dict[str, float]:
    """``count`` events in transactions of ``batch_size`` (as fast as possible, or paced at
    ``per_second`` events); returns the commit time of each event by its number."""
    committed: dict[str, float] = {}
    began = time.monotonic()
    for first in range(start, start + count, batch_size):
        if per_second:
            await asyncio.sleep(max(0.0, began + (first - start) / per_second - time.monotonic()))
        batch = [
            service.NewEvent(
                "contact.updated",
                f"contact:bench-{n % OBJECTS}",
                {"n": n, "contact": {"id": f"bench-{n % OBJECTS}"}, "changed": ["email"]},
            )
            for n in range(first, min(first + batch_size, start + count))
        ]
        async with db.session() as session:
            await service.emit_many(session, batch)
        now = time.time()
        for event in batch:
            committed[str(event.data["n"])] = now
    return committed


class Receiver:
    """The sandbox receiver in its own process, read through its API: each poll fetches only
    the deliveries it has not seen."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.AsyncClient(base_url=base, timeout=60)
        self.got: dict[str, list[dict[str, Any]]] = defaultdict(list)

    async def configure(self, name: str, **config: Any) -> None:
        r = await self.http.put(f"/sandbox/receiver/{name}/config", json=config)
        r.raise_for_status()

    async def poll(self, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        new: dict[str, list[dict[str, Any]]] = {}
        for n in names:
            r = await self.http.get(
                f"/sandbox/receiver/{n}/deliveries", params={"after": len(self.got[n])}
            )
            r.raise_for_status()
            new[n] = r.json()["deliveries"]
            self.got[n].extend(new[n])
        return new


def start_receiver(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    # The receiver's port is the sandbox's first one + 6.
    return start_sandbox(tmp, "receiver", "/sandbox/receiver/up/config", below=6)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_all(receiver: Receiver, names: list[str], expected: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    seen = {n: {str(d["id"]) for d in receiver.got[n] if d["status"] == 200} for n in names}
    while time.monotonic() < deadline:
        for n, new in (await receiver.poll(names)).items():
            seen[n].update(str(d["id"]) for d in new if d["status"] == 200)
        if all(len(seen[n]) >= expected for n in names):
            return max(d["received_at"] for n in names for d in receiver.got[n])
        await asyncio.sleep(0.2)
    raise RuntimeError(f"not every event was delivered within {timeout:.0f} s")


def checks(got: dict[str, list[dict[str, Any]]]) -> dict[str, bool]:
    one_id, in_order = True, True
    for items in got.values():
        ids: dict[str, set[str]] = defaultdict(set)
        last: dict[str, int] = {}
        for d in items:
            ids[d["id"]].add(d["webhook_id"])
            if d["status"] != 200:
                continue
            if d["seq"] < last.get(d["subject"], -1):
                in_order = False
            last[d["subject"]] = d["seq"]
        one_id = one_id and all(len(v) == 1 for v in ids.values())
    return {"one webhook-id per event": one_id, "per-object order": in_order}


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-changes-"))
    (tmp / "switchboard.toml").write_text("# bench: no connections\n")
    url = args.database_url or f"sqlite+aiosqlite:///{tmp}/hub.db"
    env = env_for(tmp, url, args.schedule)
    # On PostgreSQL, a schema of this run's own: a previous run's subscriptions (at receivers
    # long gone) would otherwise get every event too, and the retries of their failures.
    schema = f"bench_changes_{uuid.uuid4().hex[:10]}" if url.startswith("postgresql") else None
    if schema is not None:
        env["SWITCHBOARD_DATABASE_SCHEMA"] = schema
    receiver_proc, receiver_base = start_receiver(tmp)
    receiver = Receiver(receiver_base)
    port = free_port()
    api, base = launch(
        ["serve", "--port", str(port), "--no-runtime"],
        env | {"SWITCHBOARD_EMBEDDED_RUNTIME": "false"},
        tmp,
        port,
    )
    workers: list[subprocess.Popen[bytes]] = []
    db = Database(url, schema=schema)
    try:
        names = [f"s{i}" for i in range(args.subscriptions)]
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for name in names:
                r = await client.post(
                    "/event-subscriptions",
                    json={
                        "url": f"{receiver_base}/sandbox/receiver/{name}",
                        "event_types": ["contact.*"],
                    },
                )
                r.raise_for_status()
                await receiver.configure(name, secret=r.json()["secret"])
        for _ in range(args.workers):
            workers.append(
                subprocess.Popen(
                    [*WORKER, "worker"],
                    cwd=tmp,
                    env=env,
                    stdout=(tmp / f"worker{len(workers)}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
        print(f"bench directory {tmp}; writing {args.events:,} events", flush=True)
        pids = {
            **{f"worker {i}": w.pid for i, w in enumerate(workers)},
            "receiver": receiver_proc.pid,
            "API": api.pid,
        }
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        cpu_bench = time.process_time()
        started = time.time()
        committed = await write_events(db, args.events, 0)
        finished = await wait_all(receiver, names, args.events, timeout=600)
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["bench (writer, poller)"] = time.process_time() - cpu_bench
        got = receiver.got
        lags = [
            d["received_at"] - committed[str(d["data"]["n"])]
            for items in got.values()
            for d in items
            if d["status"] == 200
        ]
        total = args.events * len(names)
        rate = total / (finished - started)
        healthy = checks(got)
        per_delivery = "; ".join(
            f"{name} {seconds / total * 1e6:.0f} µs" for name, seconds in cpu.items()
        )
        rows = [
            [
                "healthy",
                f"{total:,}",
                f"{rate:,.0f}",
                f"{percentile(lags, 50) * 1000:.0f} ms",
                f"{percentile(lags, 99) * 1000:.0f} ms",
                ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in healthy.items())
                + f"; CPU per delivery: {per_delivery}",
            ]
        ]
        print(rows[0], flush=True)
        if args.trickle:
            # A steady flow well under the ceiling: how long a change waits to be delivered.
            start = args.events
            committed = await write_events(
                db, args.trickle * 10, start, batch_size=10, per_second=args.trickle
            )
            await wait_all(receiver, names, start + args.trickle * 10, timeout=600)
            got = receiver.got
            lags = [
                d["received_at"] - committed[str(d["data"]["n"])]
                for items in got.values()
                for d in items
                if d["status"] == 200 and str(d["data"]["n"]) in committed
            ]
            rows.append(
                [
                    f"trickle: {args.trickle} events/s for 10 s",
                    f"{len(lags):,}",
                    f"{args.trickle * len(names):,} offered",
                    f"{percentile(lags, 50) * 1000:.0f} ms",
                    f"{percentile(lags, 99) * 1000:.0f} ms",
                    ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks(got).items()),
                ]
            )
            print(rows[-1], flush=True)
            args.events += args.trickle * 10  # the outage's events are numbered after these
        if args.outage:
            for name in names:
                await receiver.configure(name, mode="fail")
            down_at = time.time()
            await write_events(db, 2000, args.events)
            await asyncio.sleep(max(0.0, args.outage - (time.time() - down_at)))
            for name in names:
                await receiver.configure(name, mode="ok")
            back = time.time()
            done = await wait_all(receiver, names, args.events + 2000, timeout=3600)
            after = checks(receiver.got)
            rows.append(
                [
                    f"receiver down {args.outage:g} s",
                    f"{2000 * len(names):,}",
                    f"all delivered {done - back:.0f} s after it came back",
                    "",
                    "",
                    ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in after.items()),
                ]
            )
            print(rows[-1], flush=True)
        dialect = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        print(
            append(
                f"Outbound change events (bench/changes.py), {dialect}, "
                f"{args.workers} worker(s), {len(names)} subscriptions",
                "python -m bench.changes " + " ".join(args.argv),
                ["case", "deliveries", "deliveries/s", "lag p50", "lag p99", "checks"],
                rows,
            )
        )
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=30)
        api.terminate()
        api.wait(timeout=30)
        if schema is not None:
            async with db.engine.begin() as conn:
                await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await db.dispose()
        await receiver.http.aclose()
        stop(receiver_proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--subscriptions", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url")
    parser.add_argument("--outage", type=float, default=60.0, help="0: skip the outage")
    parser.add_argument(
        "--trickle", type=int, default=100, help="events/s of the steady-flow lag case (0: skip)"
    )
    parser.add_argument("--schedule", default="0,5,300,1800,7200,18000,36000,36000")
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
