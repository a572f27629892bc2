"""Users → CRM propagation (issues 7 and 19).

    .venv/bin/python -m bench.users [--seconds 10] [--lag-users 200] [--bulk 20000]
        [--database-url postgresql+asyncpg://...] [--only bulk,patch,lag]

1. PATCH /users throughput and latency while the CRM is rate limited: the HubSpot simulator
   (in this process) at HubSpot's real limit (100 requests / 10 s), `switchboard serve` on SQLite
   with its embedded runtime propagating, wrk posting PATCHes over 5,000 users.
   Then, with thousands of CRM updates still queued, how soon a job of another kind (a sync
   of the connection) starts: the per-kind cap ([users] concurrency) keeps slots free for it.
2. Propagation lag when the CRM is healthy: one PATCH every 100 ms (a trickle of 10 changes/s);
   lag = syncedAt - updatedAt.
3. Bulk: ``--bulk`` users queued first (``POST /users/batch`` into an API-only process), then a
   ``switchboard worker`` started; HubSpot at 100 requests / 10 s, its webhooks (the echoes of
   the hub's writes) delivered to the hub. Twice: every contact already exists, and half of them
   new. Reported: seconds from the worker's start (and from the first synced user) to the last
   synced user, users/s, HubSpot requests per user, 429s, contact re-reads caused by the echoes.
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

from bench.common import SWITCHBOARD, append, free_port, launch, percentile, start_server, wrk
from switchboard.connectors.hubspot.simulator import CLIENT_SECRET, HubSpotLimits
from switchboard.sandbox import Sandbox

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


def toml(hubspot: str, webhook_secret: str | None = None) -> str:
    return (
        "[connections.hubspot]\n"
        'kind = "hubspot"\n'
        f'base_url = "{hubspot}"\n'
        'auth = { type = "token", token = "pat-sandbox" }\n'
        + (f'webhook_secret = "{webhook_secret}"\n' if webhook_secret else "")
        + "[users]\n"
        'crm_connection = "hubspot"\n'
    )


async def lag(base: str, users: int, interval: float = 0.1) -> list[float]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for i in range(users):
            r = await client.patch(f"/users/lag{i}", json={"email": f"lag{i}@example.com"})
            r.raise_for_status()
            await asyncio.sleep(interval)
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


def bulk_env(tmp: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env["SWITCHBOARD_LOG_FORMAT"] = "json"
    env["SWITCHBOARD_ACCESS_LOG"] = "false"
    if database_url:
        env["SWITCHBOARD_DATABASE_URL"] = database_url
        env["SWITCHBOARD_DATABASE_SCHEMA"] = f"bench_users_{tmp.name[-8:].lower()}"
    return env


async def bulk(
    box: Sandbox, count: int, existing: int, database_url: str | None, webhooks: bool = True
) -> list[str]:
    """``count`` users queued, ``existing`` of their contacts already in HubSpot; then one
    worker. Returns the result row."""
    sim = box.hubspot
    assert sim is not None
    sim.set_limits(HubSpotLimits(per_interval=100, interval_ms=10_000))
    sim.store.contacts.clear()
    sim.store.by_email.clear()
    tmp = Path(tempfile.mkdtemp(prefix="bench-users-"))
    (tmp / "switchboard.toml").write_text(toml(box.urls["hubspot"], CLIENT_SECRET))
    env = bulk_env(tmp, database_url)
    port = free_port()
    api, base = launch(["serve", "--port", str(port), "--no-runtime"], env, tmp, port)
    # The connection's first contacts sync runs as soon as a worker first starts; run it now,
    # against an empty CRM, so that the measured worker meets only the users' jobs (the next
    # scheduled sync is 5 minutes away) instead of a full listing of the seeded contacts
    # competing for the same 100 requests / 10 s.
    await first_sync(base, tmp, env)
    for i in range(existing):
        sim.store.create({"email": f"bulk{i}@example.com", "firstname": "Old"})
    if webhooks:  # HubSpot tells the hub about its own writes: the API process handles them
        sim.webhooks.configure(url=f"{base}/webhooks/hubspot")
    worker = None
    try:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            for start in range(0, count, 1000):
                items = [
                    {"id": f"b{i}", "email": f"bulk{i}@example.com", "firstName": f"New{i}"}
                    for i in range(start, min(count, start + 1000))
                ]
                r = await client.post("/users/batch", json={"items": items})
                r.raise_for_status()
            sim.log.clear()
            started = time.time()
            worker = start_worker(tmp, env)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                busy = 0
                for state in ("pending", "running"):
                    page = await client.get(
                        "/admin/jobs",
                        params={"kind": "users.propagate", "state": state, "limit": 1},
                    )
                    busy += len(page.json()["items"])
                if not busy:
                    break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError("the bulk did not finish within 600 s")
            synced_at: list[float] = []
            states: dict[str, int] = {}
            cursor = None
            while True:
                params: dict[str, str | int] = {"limit": 500}
                if cursor:
                    params["cursor"] = cursor
                page = (await client.get("/users", params=params)).json()
                for u in page["items"]:
                    states[u["sync"]["state"]] = states.get(u["sync"]["state"], 0) + 1
                    if u["sync"]["syncedAt"]:
                        synced_at.append(datetime.fromisoformat(u["sync"]["syncedAt"]).timestamp())
                cursor = page["next_cursor"]
                if not cursor:
                    break
            # Let the echo webhooks arrive and be handled before counting re-reads.
            for _ in range(100):
                stats = sim.webhooks.outbox.stats()
                if stats["queued"] == 0 and stats["in_flight"] == 0:
                    break
                await asyncio.sleep(0.2)
        crm = [e for e in sim.log.entries() if e["path"].startswith("/crm/")]
        calls, throttled = len(crm), sum(1 for e in crm if e.get("status") == 429)
        # What the propagation itself cost: batch writes, the reads by email of
        # ``create_missing = false`` and any search (the rest would be the connection's own sync).
        propagation = sum(1 for e in crm if "/batch/" in e["path"] or e["path"].endswith("/search"))
        # Echo re-reads are batch reads; GETs are the connection's own scheduled sync.
        reads = sum(1 for e in crm if e["path"].endswith("/batch/read"))
        writes = [e for e in crm if e["path"].endswith(("/batch/upsert", "/batch/update"))]
        fill = sum(e.get("inputs", 0) for e in writes) / max(len(writes), 1) / 100
        # The first job's start: its request reaches HubSpot a few ms later.
        first = min(e["at"] for e in crm)
        total = max(synced_at) - first
        synced = states.get("synced", 0)
        return [
            f"{count:,} users queued, {existing:,} contacts existing, 1 worker "
            f"({'PostgreSQL' if database_url else 'SQLite'}"
            f"{'' if webhooks else ', no webhooks'})",
            f"{synced / total:.0f}",
            f"{total:.1f} s",
            f"{max(synced_at) - started:.1f} s",
            f"synced {synced:,}/{count:,}; {calls} HubSpot requests, {propagation} of them "
            f"for the users ({propagation / max(synced, 1):.4f} per user, batch fill "
            f"{fill:.0%}); 429: {throttled}; "
            f"contact reads after the echo webhooks: {reads}; webhooks delivered: "
            f"{sim.webhooks.outbox.stats()['delivered']}",
        ]
    finally:
        sim.webhooks.configure(url=None)
        for process in (worker, api):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def start_worker(tmp: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A ``switchboard worker`` in ``tmp`` (its output discarded)."""
    return subprocess.Popen(
        [SWITCHBOARD, "worker"],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_first_sync(base: str) -> None:
    """Wait (bounded) until the hub's first contacts sync of the connection has succeeded."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = httpx.get(f"{base}/connections/hubspot/runs", timeout=30).json()["items"]
        if any(r["outcome"] == "succeeded" for r in runs):
            return
        time.sleep(0.2)
    raise RuntimeError("the connection's first sync did not succeed within 120 s")


async def first_sync(base: str, tmp: Path, env: dict[str, str]) -> None:
    """Start a worker until the connection's first contacts sync has succeeded, then stop it."""
    worker = start_worker(tmp, env)
    try:
        wait_first_sync(base)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--lag-users", type=int, default=200)
    parser.add_argument("--bulk", type=int, default=20_000)
    parser.add_argument("--database-url", default=None, help="bulk only; default SQLite")
    parser.add_argument("--only", default="bulk,patch,lag")
    parser.add_argument(
        "--no-webhooks", action="store_true", help="bulk without HubSpot's echo webhooks"
    )
    args = parser.parse_args()
    parts = set(args.only.split(","))
    rows = []
    with Sandbox(only=["hubspot"]) as box:
        assert box.hubspot is not None
        if "bulk" in parts:
            for existing in (args.bulk, args.bulk // 2):
                rows.append(
                    await bulk(box, args.bulk, existing, args.database_url, not args.no_webhooks)
                )
                print(rows[-1], flush=True)
        if "patch" in parts:
            rows += patch_rows(box, args.seconds)
        if "lag" in parts:
            # Healthy: limits out of the way.
            box.hubspot.set_limits(HubSpotLimits(per_interval=100_000, interval_ms=10_000))
            tmp = Path(tempfile.mkdtemp(prefix="bench-users-"))
            proc, base = start_server(tmp, toml(box.urls["hubspot"]))
            try:
                lags = await lag(base, args.lag_users)
                rows.append(
                    [
                        f"propagation lag, healthy CRM, {args.lag_users} users, one PATCH / 100 ms",
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
    database = "PostgreSQL (bulk)" if args.database_url else "SQLite"
    print(
        append(
            f"Users → CRM (bench/users.py), {database}: bulk, PATCH /users, trickle lag",
            "python -m bench.users "
            + " ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, v in vars(args).items()
                if v not in (None, False, True)
            )
            + (" --no-webhooks" if args.no_webhooks else ""),
            [
                "load",
                "users/s (bulk) or accepted/s",
                "p50, or bulk: first job start → last synced",
                "p99, or bulk: worker launch → last synced",
                "notes",
            ],
            rows,
        )
    )


def patch_rows(box: Sandbox, seconds: int) -> list[list[str]]:
    """PATCH /users under wrk while HubSpot is at its real 10-second limit, in two layouts on
    the same SQLite file and the same 2 cores: the runtime embedded in the API process (the
    default), and an API-only process beside a `switchboard worker` (the scale-out layout)."""
    assert box.hubspot is not None
    rows = []
    box.hubspot.set_limits(HubSpotLimits(per_interval=100, interval_ms=10_000))
    for layout in ("embedded runtime", "API-only + 1 worker process"):
        # An empty CRM at start: the hub's first sync of the connection (immediate) is done in
        # one request, before wrk starts, so the sync measured below is the one asked for.
        box.hubspot.store.contacts.clear()
        box.hubspot.store.by_email.clear()
        tmp = Path(tempfile.mkdtemp(prefix="bench-users-"))
        separate = layout != "embedded runtime"
        serve_args = ("--no-runtime",) if separate else ()
        proc, base = start_server(tmp, toml(box.urls["hubspot"]), args=serve_args)
        worker = None
        if separate:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
            env["SWITCHBOARD_LOG_FORMAT"] = "json"
            worker = start_worker(tmp, env)
        try:
            wait_first_sync(base)
            for conns in (32, 16, 8):  # 32: the ceiling; fewer: latency below it
                w = wrk(base, seconds, WRK_SCRIPT, tmp, connections=conns)
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
    return rows


if __name__ == "__main__":
    asyncio.run(main())
