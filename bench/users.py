"""Users → CRM propagation (issue 7).

    .venv/bin/python -m bench.users [--seconds 10] [--lag-users 200]

1. PATCH /users throughput and latency while the CRM is rate limited: the HubSpot simulator
   (in this process) at HubSpot's real limit (100 requests / 10 s), `switchboard serve` on SQLite
   with its embedded runtime propagating, wrk posting PATCHes over 5,000 users.
   Then, with thousands of CRM updates still queued, how soon a job of another kind (a sync
   of the connection) starts: the per-kind cap ([users] concurrency) keeps slots free for it.
2. Propagation lag when the CRM is healthy: one PATCH every 20 ms; lag = syncedAt - updatedAt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from bench.common import SWITCHBOARD, append, percentile, start_server, wrk
from switchboard.sandbox import Sandbox
from switchboard.sandbox.hubspot import HubSpotLimits

WRK_SCRIPT = """
local counter = 0
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
request = function()
  counter = counter + 1
  local id = (tid * 100003 + counter) % 5000
  local body = string.format('{"email":"user%d@example.com","firstName":"F%d"}', id, counter)
  return wrk.format("PATCH", "/users/u" .. id, {["Content-Type"] = "application/json"}, body)
end
"""


def toml(hubspot: str) -> str:
    return (
        "[connections.hubspot]\n"
        'kind = "hubspot"\n'
        f'base_url = "{hubspot}"\n'
        'auth = { type = "token", token = "pat-sandbox" }\n'
        "[users]\n"
        'crm_connection = "hubspot"\n'
    )


async def lag(base: str, users: int) -> list[float]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for i in range(users):
            r = await client.patch(f"/users/lag{i}", json={"email": f"lag{i}@example.com"})
            r.raise_for_status()
            await asyncio.sleep(0.02)
        lags: list[float] = []
        deadline = time.monotonic() + 120
        pending = {f"lag{i}" for i in range(users)}
        while pending and time.monotonic() < deadline:
            for user_id in list(pending):
                body = (await client.get(f"/users/{user_id}")).json()
                if body["sync"]["state"] == "synced":
                    synced = datetime.fromisoformat(body["sync"]["syncedAt"])
                    updated = datetime.fromisoformat(body["updatedAt"])
                    lags.append((synced - updated).total_seconds() * 1000)
                    pending.discard(user_id)
            await asyncio.sleep(0.2)
        if pending:
            raise RuntimeError(f"{len(pending)} users never synced")
    return lags


def other_kind_start(base: str, database: Path) -> tuple[float, int]:
    """How long a job of another kind (a sync of the CRM connection) waits to start while
    thousands of users' CRM updates are queued and waiting for the rate budget: the per-kind cap
    keeps worker slots free for it. Returns (ms from the request to the job's start, updates
    pending then)."""
    with sqlite3.connect(database) as conn:
        (pending,) = conn.execute(
            "SELECT count(*) FROM jobs WHERE kind = 'users.propagate' AND state = 'pending'"
        ).fetchone()
    asked = time.time()
    job = httpx.post(f"{base}/connections/hubspot/sync", timeout=30).json()["job_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = httpx.get(f"{base}/admin/jobs/{job}", timeout=30).json()["started_at"]
        if started is not None:
            return (datetime.fromisoformat(started).timestamp() - asked) * 1000, int(pending)
        time.sleep(0.01)
    raise RuntimeError(f"sync job {job} did not start within 120 s")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--lag-users", type=int, default=200)
    args = parser.parse_args()
    rows = []
    with Sandbox(only=["hubspot"]) as box:
        assert box.hubspot is not None
        # 1. Rate limited: HubSpot's real 10-second limit. Two layouts on the same SQLite
        # file and the same 2 cores: the runtime embedded in the API process (the default),
        # and an API-only process beside a `switchboard worker` (the scale-out layout).
        box.hubspot.set_limits(HubSpotLimits(per_interval=100, interval_ms=10_000))
        for layout in ("embedded runtime", "API-only + 1 worker process"):
            tmp = Path(tempfile.mkdtemp(prefix="bench-users-"))
            separate = layout != "embedded runtime"
            serve_args = ("--no-runtime",) if separate else ()
            proc, base = start_server(tmp, toml(box.urls["hubspot"]), args=serve_args)
            worker = None
            if separate:
                env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
                env["SWITCHBOARD_LOG_FORMAT"] = "json"
                worker = subprocess.Popen(
                    [SWITCHBOARD, "worker"],
                    cwd=tmp,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            try:
                for conns in (32, 16, 8):  # 32: the ceiling; fewer: latency below it
                    w = wrk(base, args.seconds, WRK_SCRIPT, tmp, connections=conns)
                    rows.append(
                        [
                            f"PATCH /users, CRM at 100 req/10 s, {layout} (wrk -t2 -c{conns})",
                            w["rps"],
                            w["p50"],
                            w["p99"],
                            f"non-2xx: {w['non2xx']}",
                        ]
                    )
                    print(rows[-1], flush=True)
                lag_ms, pending = other_kind_start(base, tmp / "switchboard.db")
                rows.append(
                    [
                        f"a HubSpot sync asked for behind {pending:,} queued CRM updates, {layout}",
                        "",
                        "",
                        "",
                        f"started after {lag_ms:.0f} ms",
                    ]
                )
                print(rows[-1], flush=True)
            finally:
                for process in (proc, worker):
                    if process is not None:
                        process.terminate()
                        process.wait(timeout=30)
        # 2. Healthy: limits out of the way.
        box.hubspot.set_limits(HubSpotLimits(per_interval=100_000, interval_ms=10_000))
        tmp = Path(tempfile.mkdtemp(prefix="bench-users-"))
        proc, base = start_server(tmp, toml(box.urls["hubspot"]))
        try:
            lags = await lag(base, args.lag_users)
            rows.append(
                [
                    f"propagation lag, healthy CRM, {args.lag_users} users, one PATCH / 20 ms",
                    "",
                    f"{percentile(lags, 50):.0f} ms",
                    f"{percentile(lags, 99):.0f} ms",
                    "syncedAt - updatedAt",
                ]
            )
            print(rows[-1], flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(
        append(
            "Users → CRM (bench/users.py), SQLite: embedded runtime, and API + worker process",
            f"python -m bench.users --seconds {args.seconds} --lag-users {args.lag_users}",
            ["load", "accepted/s", "p50", "p99", "notes"],
            rows,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
