"""Event feed ingest and ``GET /search`` throughput, against real processes.

    .venv/bin/python -m bench.search [--base-plans 10000 --plans 5 --zones 100] [--duration 15]

1. The sandbox's event simulator (``switchboard sandbox --only events``, its own process) serves
   a generated feed of base plans x plans x zones over two years; the document is generated
   once before timing.
2. Ingest: ``switchboard sync events`` (a fresh SQLite store) under ``/usr/bin/time -v``: wall
   time and peak RSS of the hub process (fetch, parse, store).
3. One API process (``switchboard serve --no-runtime``, SQLite) answers ``wrk -t2 -c64 -d15s
   --latency`` for (a) a narrow window of about 10 plans and (b) one month (about 2,000 plans),
   with the access log on and off.
4. The ceilings, each a separate process so the hub itself carries no benchmark-only route:
   a FastAPI app with the hub's middleware and API-key dependency answering a constant body of
   the size of (a) (``--serve-constant``), and a raw ASGI app on uvicorn answering the same
   body (``--serve-raw``): the most any Python answer can get here.
5. ``serve --workers 2`` (access log off), and the loop/HTTP parser choice: the hub and the raw
   ceiling on uvicorn's pure-Python pair (asyncio, h11) against what ``serve`` uses (uvloop,
   httptools: uvicorn's "auto" when they are installed, as ``uvicorn[standard]`` does).

A wrk run with any socket error or non-2xx answer is not a result: its row says so.

wrk, the server and the simulator share the machine's cores: numbers are for this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import append, stop

REPO = Path(__file__).resolve().parents[1]
SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))
API_KEY = "bench-key-0123456789"
SANDBOX_PORT = 8301  # the events simulator listens on port + 3
API_PORT = 8391
CONSTANT_PORT = 8392
BENCH = [sys.executable, "-m", "bench.search"]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, headers={"X-API-Key": API_KEY}).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def wrk(url: str, duration: int, connections: int) -> dict[str, float]:
    """req/s, p50/p99 (ms), non-2xx answers and socket errors (connect, read, write, timeout
    summed) of one run."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"X-API-Key: {API_KEY}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    assert rps, out
    return {
        "rps": float(rps.group(1)),
        "p50": latency("50%"),
        "p99": latency("99%"),
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": float(sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1))))
        if socket_errors
        else 0.0,
    }


def serve_raw(port: int, size: int, loop: str, http: str) -> None:
    """The raw ceiling: an ASGI callable on uvicorn answering a constant body (no middleware,
    no routing, no key check)."""
    import uvicorn

    body = b'{"data":{"events":[' + b"x" * max(size - 34, 0) + b']},"error":null}'
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ],
    }
    end = {"type": "http.response.body", "body": body}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start)
        await send(end)

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        loop=loop,
        http=http,
    )


def serve_constant(port: int, size: int, access_log: bool) -> None:
    """The ceiling: the hub's middleware and API-key check around a constant body."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import Response

    from switchboard.app import _install_error_handlers
    from switchboard.config import Config, HubConfig, load_settings
    from switchboard.deps import Authenticated
    from switchboard.logs import configure_logging
    from switchboard.middleware import RequestContextMiddleware

    settings = load_settings(api_keys=API_KEY, access_log=access_log)
    configure_logging(settings)
    body = b'{"data":{"events":[' + b"x" * max(size - 34, 0) + b']},"error":null}'
    app = FastAPI()
    app.state.config = Config(settings, HubConfig(), None)
    _install_error_handlers(app)  # as create_app() does
    app.add_middleware(
        RequestContextMiddleware, max_body_bytes=settings.max_body_bytes, access_log=access_log
    )

    @app.get("/search", dependencies=Authenticated)
    async def constant() -> Response:
        return Response(body, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def rss_and_time(stderr: str) -> tuple[float, float]:
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", stderr)
    assert peak and wall, stderr[-2000:]
    parts = [float(p) for p in wall.group(1).split(":")]
    seconds = sum(p * 60 ** (len(parts) - 1 - i) for i, p in enumerate(parts))
    return int(peak.group(1)) / 1024, seconds


def find_window(base: str, hours: float, start: datetime) -> tuple[str, int]:
    end = start + timedelta(hours=hours)
    url = (
        f"{base}/search?starts_at={start.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        f"&ends_at={end.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )
    r = httpx.get(url, headers={"X-API-Key": API_KEY}, timeout=30)
    r.raise_for_status()
    return url, len(r.json()["data"]["events"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-plans", type=int, default=10_000)
    parser.add_argument("--plans", type=int, default=5)
    parser.add_argument("--zones", type=int, default=100)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--ingest-only",
        action="store_true",
        help="measure the ingest (time, peak RSS) and skip /search (e.g. the 622k-plan feed: "
        "--base-plans 62200 --plans 10 --zones 1)",
    )
    parser.add_argument(
        "--sandbox-port",
        type=int,
        help="use the sandbox already running on this port (its events simulator on port + 3) "
        "instead of starting one: generating a large feed takes minutes",
    )
    parser.add_argument("--serve-constant", nargs=3, metavar=("PORT", "SIZE", "ACCESS_LOG"))
    parser.add_argument("--serve-raw", nargs=4, metavar=("PORT", "SIZE", "LOOP", "HTTP"))
    args = parser.parse_args()
    if args.serve_constant:
        port, size, log = args.serve_constant
        serve_constant(int(port), int(size), log == "true")
        return
    if args.serve_raw:
        port, size, loop, http = args.serve_raw
        serve_raw(int(port), int(size), loop, http)
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench-search-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    base_env["PYTHONPATH"] = str(REPO)
    sandbox_log = open(tmp / "sandbox.log", "wb")  # noqa: SIM115 - closed with the process
    procs: list[subprocess.Popen[bytes]] = []
    if args.sandbox_port is None:
        sandbox = subprocess.Popen(
            [SWITCHBOARD, "sandbox", "--only", "events", "--port", str(SANDBOX_PORT)],
            env=base_env,
            cwd=tmp,
            stdout=sandbox_log,
            stderr=subprocess.STDOUT,
        )
        procs.append(sandbox)
    feed_base = f"http://127.0.0.1:{(args.sandbox_port or SANDBOX_PORT) + 3}"
    rows: list[list[str]] = []
    try:
        wait_http(f"{feed_base}/_sandbox/events/settings")
        httpx.patch(
            f"{feed_base}/_sandbox/events/settings",
            json={
                "mode": "generated",
                "base_plans": args.base_plans,
                "plans": args.plans,
                "zones": args.zones,
            },
        ).raise_for_status()
        started = time.monotonic()
        size = 0
        with httpx.stream("GET", f"{feed_base}/api/events", timeout=600) as response:
            for chunk in response.iter_bytes():
                size += len(chunk)
        print(f"feed: {size:,} bytes, generated in {time.monotonic() - started:.1f}s")

        config = tmp / "switchboard.toml"
        config.write_text(
            f'[server]\napi_keys = ["{API_KEY}"]\n\n[connections.events]\nkind = "xml_feed"\n'
            f'url = "{feed_base}/api/events"\ninterval = "1h"\nread_timeout = "600s"\n'
        )
        env = {
            **base_env,
            "SWITCHBOARD_CONFIG": str(config),
            "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "SWITCHBOARD_DATA_DIR": str(tmp),
            "SWITCHBOARD_LOG_FORMAT": "json",
        }
        ingest = subprocess.run(
            ["/usr/bin/time", "-v", SWITCHBOARD, "sync", "events"],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        print(ingest.stdout.strip())
        if ingest.returncode != 0:
            raise RuntimeError(ingest.stderr[-3000:])
        peak_mb, seconds = rss_and_time(ingest.stderr)
        summary = ingest.stdout.strip().splitlines()[-1]
        print(f"ingest: {seconds:.1f}s, peak RSS {peak_mb:.0f} MB")
        if args.ingest_only:
            text = append(
                "Event feed ingest (bench/search.py --ingest-only)",
                f"python -m bench.search --base-plans {args.base_plans} --plans {args.plans} "
                f"--zones {args.zones} --ingest-only",
                ["feed", "bytes", "ingest s", "peak RSS MB", "run"],
                [
                    [
                        f"{args.base_plans:,} x {args.plans} x {args.zones}",
                        f"{size:,}",
                        f"{seconds:.1f}",
                        f"{peak_mb:.0f}",
                        summary,
                    ]
                ],
            )
            print(text)
            return

        results: dict[str, dict[str, float]] = {}
        labels: dict[str, tuple[str, str, str, str]] = {}
        sizes: dict[str, tuple[int, int]] = {}
        api_base = f"http://127.0.0.1:{API_PORT}"

        def start(
            command: list[str], log_name: str, extra_env: dict[str, str] | None = None
        ) -> subprocess.Popen[bytes]:
            log = open(tmp / f"{log_name}.log", "wb")  # noqa: SIM115 - closed with the process
            proc = subprocess.Popen(
                command,
                env={**env, **(extra_env or {})},
                cwd=REPO if command[0] == sys.executable else tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            procs.append(proc)
            return proc

        def measure(key: str, url: str, label: tuple[str, str, str, str]) -> None:
            # A fresh process loads its index on its first /search: not part of the run.
            for _ in range(4):
                httpx.get(url, headers={"X-API-Key": API_KEY}, timeout=60).raise_for_status()
            results[key] = wrk(url, args.duration, args.connections)
            labels[key] = label
            print(key, label, results[key], flush=True)

        def hub(
            workers: int, access_log: bool, server: str = "uvloop/httptools"
        ) -> subprocess.Popen[bytes]:
            log_env = {"SWITCHBOARD_ACCESS_LOG": str(access_log).lower()}
            if server == "uvloop/httptools":
                command = [SWITCHBOARD, "serve", "--no-runtime", "--port", str(API_PORT)]
                command += ["--workers", str(workers)]
            else:  # the same app on uvicorn's pure-Python loop and parser
                command = [sys.executable, "-m", "uvicorn", "switchboard.app:create_app"]
                command += ["--factory", "--port", str(API_PORT), "--loop", "asyncio"]
                command += ["--http", "h11", "--no-access-log", "--log-level", "warning"]
                log_env["SWITCHBOARD_EMBEDDED_RUNTIME"] = "false"
            proc = start(command, f"api-{workers}-{access_log}-{server[:3]}", log_env)
            wait_http(f"{api_base}/health")
            return proc

        narrow = month = ""
        for access_log in (False, True):
            api = hub(1, access_log)
            if not narrow:
                month, month_n = find_window(api_base, 24 * 30, datetime(2021, 9, 1, tzinfo=UTC))
                # A window of about 10 plans: start from the month's density, then adjust.
                hours = 24 * 30 * 10 / max(month_n, 1)
                for _ in range(20):
                    narrow, narrow_n = find_window(
                        api_base, hours, datetime(2021, 9, 10, 12, tzinfo=UTC)
                    )
                    if 8 <= narrow_n <= 12:
                        break
                    hours *= 1.15 if narrow_n < 8 else 0.87
                narrow_size = len(httpx.get(narrow, headers={"X-API-Key": API_KEY}).content)
                month_size = len(httpx.get(month, headers={"X-API-Key": API_KEY}).content)
                sizes["a"], sizes["b"] = (narrow_n, narrow_size), (month_n, month_size)
            on = "on" if access_log else "off"
            on_off = str(access_log).lower()
            measure(f"a-1-{on}", narrow, ("(a) narrow", on, "1", "uvloop/httptools"))
            measure(f"b-1-{on}", month, ("(b) one month", on, "1", "uvloop/httptools"))
            stop(api)
            constant = start(
                [*BENCH, "--serve-constant", str(CONSTANT_PORT), str(sizes["a"][1]), on_off],
                f"constant-{access_log}",
            )
            ceiling_url = f"http://127.0.0.1:{CONSTANT_PORT}/search"
            wait_http(ceiling_url)
            measure(
                f"fastapi-{on}",
                ceiling_url,
                ("ceiling: FastAPI + hub middleware, constant body", on, "1", "uvloop/httptools"),
            )
            stop(constant)
        for key, server, (loop, http), body_size in (
            ("raw-uvloop", "uvloop/httptools", ("uvloop", "httptools"), sizes["a"][1]),
            ("raw-asyncio", "asyncio/h11", ("asyncio", "h11"), sizes["a"][1]),
            # What sending (b)'s bytes costs by itself.
            ("raw-month", "uvloop/httptools", ("uvloop", "httptools"), sizes["b"][1]),
        ):
            raw = start(
                [*BENCH, "--serve-raw", str(CONSTANT_PORT), str(body_size), loop, http], key
            )
            raw_url = f"http://127.0.0.1:{CONSTANT_PORT}/search"
            wait_http(raw_url)
            label = f"ceiling: raw ASGI, constant {body_size:,} B body"
            measure(key, raw_url, (label, "-", "1", server))
            stop(raw)
        api = hub(1, False, "asyncio/h11")
        measure("a-1-off-h11", narrow, ("(a) narrow", "off", "1", "asyncio/h11"))
        stop(api)
        api = hub(2, False)
        measure("a-2-off", narrow, ("(a) narrow", "off", "2", "uvloop/httptools"))
        measure("b-2-off", month, ("(b) one month", "off", "2", "uvloop/httptools"))
        stop(api)

        for key, r in results.items():
            case, on, processes, server = labels[key]
            if case.startswith("(a)"):
                case = f"(a) narrow window: {sizes['a'][0]} plans, {sizes['a'][1]:,} B"
            elif case.startswith("(b)"):
                case = f"(b) one month: {sizes['b'][0]:,} plans, {sizes['b'][1]:,} B"
            valid = r["non2xx"] == 0 and r["socket_errors"] == 0
            fastapi = results.get(f"fastapi-{on}", results["fastapi-off"])["rps"]
            # Each answer against the raw ceiling of its own body size.
            same_size = "raw-month" if key.startswith("b-") or key == "raw-month" else "raw-uvloop"
            raw_ceiling = results[same_size]["rps"]
            rows.append(
                [
                    case,
                    on,
                    processes,
                    server,
                    f"{r['rps']:,.0f}" if valid else f"NOT A RESULT ({r['rps']:,.0f})",
                    f"{r['p50']:.2f}",
                    f"{r['p99']:.2f}",
                    f"{100 * r['rps'] / raw_ceiling:.0f} %",
                    f"{100 * r['rps'] / fastapi:.0f} %",
                    f"{r['non2xx']:.0f}",
                    f"{r['socket_errors']:.0f}",
                ]
            )
        feed_desc = (
            f"feed {args.base_plans:,} base plans x {args.plans} plans x {args.zones} zones "
            f"({size / 1e6:,.0f} MB); ingest (switchboard sync events): {seconds:.1f} s, peak "
            f"RSS {peak_mb:.0f} MB ({summary})"
        )
        print(feed_desc)
        text = append(
            "Event feed ingest and /search (bench/search.py)",
            "python -m bench.search "
            + " ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, v in vars(args).items()
                if k not in ("serve_constant", "serve_raw", "sandbox_port", "ingest_only")
            )
            + f"; wrk -t2 -c{args.connections} -d{args.duration}s --latency; {feed_desc}",
            [
                "case",
                "access log",
                "processes",
                "loop/http",
                "req/s",
                "p50 ms",
                "p99 ms",
                "% of raw-ASGI ceiling (uvloop/httptools, same body size)",
                "% of FastAPI ceiling (same log setting)",
                "non-2xx",
                "socket errors",
            ],
            rows,
        )
        print(text)
        print(json.dumps({"tmp": str(tmp)}))
    finally:
        for proc in procs:
            stop(proc)
        sandbox_log.close()


if __name__ == "__main__":
    main()
