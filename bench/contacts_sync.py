"""Contacts: a HubSpot sync at HubSpot's real limits, and GET /contacts latency over a big store.

    .venv/bin/python -m bench.contacts_sync [--contacts 20000] [--changed 2000] [--stored 100000]

1. Sync: the HubSpot simulator with ``--contacts`` seeded contacts and HubSpot's real limits
   (100 requests per rolling 10 s, 100 per list page, search 5/s). The connection has no
   ``rate_limit``: the budget is learnt from ``X-HubSpot-RateLimit-*`` as in production. A full
   sync (``switchboard sync --full`` path), then ``--changed`` contacts edited and an incremental
   run (search). Reported: contacts/s, requests, the share of the rate budget used over the run
   (requests / (elapsed x 10 req/s); above 100 % when the first window's burst of 100 dominates
   a short run), and 429s received.
2. Reads: ``--stored`` contacts in a SQLite store, ``switchboard serve`` (one process), ``wrk``
   with 2 connections (wrk runs 2 threads) and 4 for 15 s per case.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import append, start_server, wrk
from switchboard.config import Config, HubConfig, load_settings
from switchboard.connectors.crm import CrmContact
from switchboard.connectors.hubspot.simulator import PRIVATE_APP_TOKEN
from switchboard.contacts import service
from switchboard.db import Database, utcnow
from switchboard.http import Outbound
from switchboard.sandbox import Sandbox
from switchboard.syncs import service as syncs

API_KEY = "bench-key-0123456789"


async def bench_sync(tmp: Path, contacts: int, changed: int) -> list[list[str]]:
    rows: list[list[str]] = []
    with Sandbox(only=["hubspot"], contacts=contacts) as box:
        sim = box.hubspot
        assert sim is not None
        settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp}/sync.db", data_dir=tmp)
        hub = HubConfig.model_validate(
            {
                "connections": {
                    "hubspot": {
                        "kind": "hubspot",
                        "base_url": box.urls["hubspot"],
                        "auth": {"type": "token", "token": PRIVATE_APP_TOKEN},
                    }
                }
            }
        )
        config = Config(settings, hub, None)
        db = Database(settings.database_url)
        await db.upgrade()
        outbound = Outbound(config, db)
        try:
            for label, prepare, full in (
                (f"full sync, {contacts:,} contacts", None, True),
                (f"incremental sync, {changed:,} changed", changed, False),
            ):
                if prepare:
                    for cid in range(1, prepare + 1):
                        sim.ui_update(cid, {"company": f"Changed {cid}"})
                    # HubSpot makes changes searchable within seconds; so does our window.
                sim.log.clear()
                started = time.monotonic()
                _, result, error = await syncs.run_now(config, db, outbound, "hubspot", full=full)
                elapsed = time.monotonic() - started
                assert error is None and result is not None, error
                entries = sim.log.entries()
                statuses = [e["status"] for e in entries]
                searches = sum(1 for e in entries if e["path"].endswith("/search"))
                general = len(entries) - searches
                # The binding budget: 10 req/s rolling for lists, 5/s for search.
                share = (
                    (general / (elapsed * 10))
                    if general >= searches * 2
                    else (searches / (elapsed * 5))
                )
                rows.append(
                    [
                        label,
                        f"{result.upserted:,}",
                        f"{elapsed:.1f}",
                        f"{result.upserted / elapsed:,.0f}",
                        f"{general} + {searches} search",
                        f"{share:.0%}",
                        str(statuses.count(429)),
                    ]
                )
                print(rows[-1], flush=True)
        finally:
            await outbound.aclose()
            await db.dispose()
    return rows


async def fill_store(url: str, stored: int) -> None:
    db = Database(url)
    await db.upgrade()
    now = utcnow()
    batch = 1000
    for start in range(0, stored, batch):
        contacts = [
            CrmContact(
                external_id=str(i),
                fields={
                    "email": f"person{i}@example.com",
                    "firstName": f"First{i % 997}",
                    "lastName": f"Last{i % 991}",
                    "phone": f"+1555{i:07d}",
                    "company": f"Company {i % 50}",
                },
                created_at=now,
                updated_at=now,
                archived=False,
                raw={"id": str(i), "properties": {"email": f"person{i}@example.com"}},
            )
            for i in range(start + 1, min(start + batch, stored) + 1)
        ]
        async with db.session() as session:
            await service.store(session, "hubspot", contacts)
    await db.dispose()


def bench_reads(tmp: Path, stored: int) -> list[list[str]]:
    asyncio.run(fill_store(f"sqlite+aiosqlite:///{tmp}/switchboard.db", stored))
    toml = f"""
[server]
api_keys = ["{API_KEY}"]

[connections.hubspot]
kind = "hubspot"
base_url = "http://127.0.0.1:9"
auth = {{ type = "token", token = "unused" }}
sync_interval = "24h"
"""
    proc, base = start_server(tmp, toml, access_log=False, args=("--no-runtime",))
    rows = []
    try:
        cases = [
            ("first page, limit=100", "/contacts?limit=100", 2),
            ("first page, limit=100", "/contacts?limit=100", 4),
            ("deep page (cursor), limit=100", "/contacts?limit=100&cursor=CURSOR", 2),
            ("limit=500", "/contacts?limit=500", 2),
            ("email filter", "/contacts?email=person77777@example.com", 2),
        ]
        page = httpx.get(
            f"{base}/contacts?limit=500", headers={"X-API-Key": API_KEY}, timeout=10
        ).json()
        for _ in range(60):  # ~30,000 contacts in
            page = httpx.get(
                f"{base}/contacts?limit=500&cursor={page['next_cursor']}",
                headers={"X-API-Key": API_KEY},
                timeout=10,
            ).json()
        cursor = page["next_cursor"]
        for label, path, connections in cases:
            path = path.replace("CURSOR", cursor)
            script = (
                f'wrk.method = "GET"\nwrk.path = "{path}"\nwrk.headers["X-API-Key"] = "{API_KEY}"\n'
            )
            result = wrk(base, 15, script, tmp, connections=connections)
            rows.append(
                [
                    label,
                    str(connections),
                    f"{stored:,}",
                    result["rps"],
                    result["p50"],
                    result["p99"],
                    result["non2xx"],
                ]
            )
            print(rows[-1], flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--changed", type=int, default=2_000)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--skip-reads", action="store_true")
    args = parser.parse_args()
    command = (
        f"python -m bench.contacts_sync --contacts {args.contacts} --changed {args.changed} "
        f"--stored {args.stored}"
    )
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if not args.skip_sync:
            rows = asyncio.run(bench_sync(tmp, args.contacts, args.changed))
            print(
                append(
                    "Contacts: HubSpot sync at HubSpot's limits (bench/contacts_sync.py)",
                    command,
                    [
                        "run",
                        "contacts stored",
                        "seconds",
                        "contacts/s",
                        "requests",
                        "budget used",
                        "429s",
                    ],
                    rows,
                )
            )
        if not args.skip_reads:
            reads = bench_reads(tmp, args.stored)
            print(
                append(
                    "Contacts: GET /contacts over a big store (bench/contacts_sync.py)",
                    command + "; SQLite, one `switchboard serve` process, wrk -d15s",
                    ["case", "connections", "contacts stored", "req/s", "p50", "p99", "non-2xx"],
                    reads,
                )
            )


if __name__ == "__main__":
    main()
