"""Scale-out (issue 10): throughput with 1 vs 2 API processes on PostgreSQL.

    SWITCHBOARD_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python -m bench.scale [--seconds 10] [--connections 32]

For each API layout (`switchboard serve --no-runtime`, then `--workers 2`), in a fresh schema
with the same generated feed ingested once (`switchboard sync events`), wrk measures:

* `GET /search` (every plan: the whole index, answered from each process's memory);
* `POST /webhooks/todo` (unsigned `created` events, each a new task: one committed transaction
  per group of concurrent deliveries before the 202).

wrk runs on the same machine (its two threads compete with the server processes and
PostgreSQL for the cores), so the numbers show how the layouts compare here, not a ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import SWITCHBOARD, append, free_port, launch, wrk
from switchboard.connectors.xml_feed.simulator import FEED_PATH
from switchboard.sandbox import Sandbox

SEARCH_SCRIPT = """
wrk.method = "GET"
wrk.path = "/search"
"""
WEBHOOK_SCRIPT = """
local counter = 0
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
request = function()
  counter = counter + 1
  local body = string.format('{"event":"created","timestamp":"2025-04-01T10:00:00Z",'
    .. '"metadata":{"userId":"%d","id":"%s-%s-%d","content":"bench","isCompleted":false}}',
    counter % 1000, run, tid, counter)
  return wrk.format("POST", "/webhooks/todo", {["Content-Type"] = "application/json"}, body)
end
"""


def environment(url: str, schema: str, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_DATABASE_URL": url,
            "SWITCHBOARD_DATABASE_SCHEMA": schema,
            "SWITCHBOARD_CONFIG": str(config),
            "SWITCHBOARD_LOG_FORMAT": "json",
            "SWITCHBOARD_ACCESS_LOG": "false",
            "SWITCHBOARD_LOG_LEVEL": "warning",
        }
    )
    return env


def serve(env: dict[str, str], cwd: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = ["serve", "--no-runtime", "--port", str(port), "--workers", str(workers)]
    return launch(args, env, cwd, port)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def drop_schema(url: str, schema: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("SWITCHBOARD_TEST_DATABASE_URL"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--base-plans", type=int, default=100, help="x 3 plans in the feed")
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        parser.error("a PostgreSQL URL is needed (--database-url or SWITCHBOARD_TEST_DATABASE_URL)")

    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp_name, Sandbox(only=["events"]) as box:
        tmp = Path(tmp_name)
        assert box.events is not None
        box.events.configure(mode="generated", base_plans=args.base_plans, plans=3, zones=5)
        config = tmp / "switchboard.toml"
        config.write_text(
            f"""
[connections.events]
kind = "xml_feed"
url = "{box.urls["events"]}{FEED_PATH}"
interval = "1d"

[connections.todo]
kind = "todo_webhooks"
"""
        )
        for workers in (1, 2):
            schema = f"bench_scale_{uuid.uuid4().hex[:10]}"
            env = environment(args.database_url, schema, config)
            try:
                subprocess.run([SWITCHBOARD, "db", "upgrade"], env=env, cwd=tmp, check=True)
                subprocess.run(
                    [SWITCHBOARD, "sync", "events"],
                    env=env,
                    cwd=tmp,
                    check=True,
                    capture_output=True,
                )
                proc, base = serve(env, tmp, workers)
                try:
                    plans = len(httpx.get(f"{base}/search", timeout=10).json()["data"]["events"])
                    wrk(base, 2, SEARCH_SCRIPT, tmp, args.connections)  # warm every process
                    search = wrk(base, args.seconds, SEARCH_SCRIPT, tmp, args.connections)
                    script = WEBHOOK_SCRIPT.replace("run, ", f'"r{workers}", ')
                    webhooks = wrk(base, args.seconds, script, tmp, args.connections)
                finally:
                    stop(proc)
            finally:
                asyncio.run(drop_schema(args.database_url, schema))
            layout = "1 process" if workers == 1 else "2 processes (`--workers 2`)"
            for name, result in (
                (f"GET /search ({plans} plans)", search),
                ("POST /webhooks/todo (new task each)", webhooks),
            ):
                rows.append(
                    [
                        layout,
                        name,
                        result["rps"],
                        result["p50"],
                        result["p99"],
                        result["non2xx"],
                    ]
                )
            print(rows[-2], rows[-1], flush=True)
    command = (
        f"python -m bench.scale --seconds {args.seconds} --connections {args.connections} "
        f"--base-plans {args.base_plans}; "
        "PostgreSQL 127.0.0.1, serve --no-runtime, wrk -t2 on the same machine"
    )
    print(
        append(
            "Scale-out: 1 vs 2 API processes on PostgreSQL (bench/scale.py)",
            command,
            ["API processes", "request", "req/s", "p50", "p99", "non-2xx"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
