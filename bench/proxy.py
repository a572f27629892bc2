"""The proxy's overhead: ``GET /proxy/hubspot/crm/v3/objects/contacts/{id}`` against the same
request sent straight to the HubSpot simulator.

    .venv/bin/python -m bench.proxy [--requests 2000]

The HubSpot simulator (``switchboard sandbox``) and the hub (``switchboard serve
--no-runtime``, SQLite) each run in their own process; this process sends the requests one at a
time on a kept-alive connection (so each latency is one request's, not a queue's), first
``--warmup`` untimed ones. The simulator's rate limits are raised so that neither it nor the
hub's budget ever waits. Overhead = the proxied latency minus the direct one, at p50 and p99;
the hub runs with its access log off and on (one more log line per request).

Issue 21's target: proxy overhead p50 <= 2 ms. The client, the hub and the simulator share the
machine's cores: numbers are for this machine and its load (printed with the results).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import (
    append,
    percentile,
    start_hubspot_simulator,
    start_server,
    stop,
)
from switchboard.connectors.hubspot.simulator import PRIVATE_APP_TOKEN

API_KEY = "bench-key-0123456789"
TOKEN = PRIVATE_APP_TOKEN  # the simulator's private app
CONTACTS = "/crm/v3/objects/contacts"


def toml(hubspot: str) -> str:
    """Two connections to the same simulator: ``hubspot`` as the hub has it (its rate budget
    learns HubSpot's window from the answers' headers, and leases tokens from the database a
    block at a time), and ``plain``, a mapped CRM without a rate limit (no budget): the
    difference is the budget's share of the overhead."""
    auth = f'auth = {{ type = "token", token = "{TOKEN}" }}\n'
    return (
        f'[server]\napi_keys = ["{API_KEY}"]\n\n'
        f'[connections.hubspot]\nkind = "hubspot"\nbase_url = "{hubspot}"\n{auth}\n'
        f'[connections.plain]\nkind = "mapped_crm"\nbase_url = "{hubspot}"\n{auth}'
        f'paths = {{ list = "{CONTACTS}", item = "{CONTACTS}/{{id}}", create = "{CONTACTS}" }}\n'
        'fields = { email = "email" }\n'
    )


def timed(client: httpx.Client, url: str, count: int, warmup: int) -> list[float]:
    """Milliseconds of each of ``count`` sequential GETs (after ``warmup`` untimed ones)."""
    for _ in range(warmup):
        client.get(url).raise_for_status()
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    simulator, hubspot = start_hubspot_simulator(tmp, "--contacts", "10")
    procs = [simulator]
    rows: list[list[str]] = []
    try:
        httpx.put(
            f"{hubspot}/_sandbox/hubspot/limits",
            json={"per_interval": 10_000_000, "interval_ms": 10_000, "daily": 100_000_000},
        ).raise_for_status()
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as direct:
            first = direct.get(f"{hubspot}{CONTACTS}", params={"limit": 1}).json()
            path = f"{CONTACTS}/{first['results'][0]['id']}"
            base_lat = timed(direct, f"{hubspot}{path}", args.requests, args.warmup)
        rows.append(row("direct to the simulator", base_lat, None))
        for access_log in (False, True):
            (tmp / f"log-{access_log}").mkdir()
            hub, base = start_server(
                tmp / f"log-{access_log}", toml(hubspot), access_log=access_log
            )
            procs.append(hub)
            on = "on" if access_log else "off"
            with httpx.Client(headers={"X-API-Key": API_KEY}, timeout=30) as client:
                for name, what in (("hubspot", "rate budget"), ("plain", "no rate budget")):
                    url = f"{base}/proxy/{name}{path}"
                    lat = timed(client, url, args.requests, args.warmup)
                    label = f"through /proxy/{name} ({what}, access log {on})"
                    rows.append(row(label, lat, base_lat))
            stop(hub)
    finally:
        for proc in procs:
            stop(proc)
    for r in rows:
        print(" | ".join(r))
    text = append(
        "Provider proxy overhead (bench/proxy.py)",
        f"python -m bench.proxy --requests {args.requests} --warmup {args.warmup}",
        ["path", "p50 ms", "p99 ms", "overhead p50 ms", "overhead p99 ms", "notes"],
        [
            [*r[:5], f"{args.requests:,} sequential GETs; load average {load:.1f} at start"]
            for r in rows
        ],
    )
    print(text)


def row(label: str, latencies: list[float], base: list[float] | None) -> list[str]:
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    if base is None:
        return [label, f"{p50:.2f}", f"{p99:.2f}", "", ""]
    return [
        label,
        f"{p50:.2f}",
        f"{p99:.2f}",
        f"{p50 - percentile(base, 50):.2f}",
        f"{p99 - percentile(base, 99):.2f}",
    ]


if __name__ == "__main__":
    main()
