"""Connections changed through one API process take effect in the other API process and in the
worker without a restart: created (its sync runs on the worker), credentials swapped (the
worker's client is rebuilt), paused, deleted. Two API processes and one worker, real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from switchboard.connectors.hubspot.simulator.tokens import PRIVATE_APP_TOKEN
from tests.acceptance.cluster import (
    Cluster,
    client,
    free_port,
    log_events,
    wait_healthy,
    wait_logged,
)
from tests.support import API_KEY, Backend, eventually, switchboard_env


@pytest.fixture
def cluster(backend: Backend, tmp_path: Path) -> Iterator[Cluster]:
    env = switchboard_env(
        backend,
        tmp_path,
        SWITCHBOARD_CONFIG=str(tmp_path / "switchboard.toml"),
        SWITCHBOARD_ACCESS_LOG="false",
        SWITCHBOARD_CONNECTIONS_POLL_INTERVAL="0.5",
        SWITCHBOARD_HTTP_MAX_ATTEMPTS="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("SWITCHBOARD_JOB_MODULES", None)
    running = Cluster(tmp_path, env)
    yield running
    running.stop()


async def runs(api: httpx.AsyncClient, ref: str) -> list[dict[str, object]]:
    r = await api.get(f"/connections/{ref}/runs")
    assert r.status_code == 200, r.text
    items: list[dict[str, object]] = r.json()["items"]
    return items


async def test_changes_reach_every_process_without_a_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    _, urls = cluster.sandbox("--only", "hubspot")
    (tmp_path / "switchboard.toml").write_text(
        f"""
[server]
api_keys = ["{API_KEY}"]

[integrations.hs]
provider = "hubspot"
base_url = "{urls["hubspot"]}"
"""
    )
    apis = []
    for name in ("api1", "api2"):
        port = free_port()
        proc, base = cluster.api(name, port, "--no-runtime")
        wait_healthy(proc, base)
        apis.append(client(base))
    worker = cluster.worker("worker")
    wait_logged(worker, "worker_started")  # so that it learns of the connection by a reload
    one, two = apis
    try:
        r = await one.post(
            "/connections",
            json={
                "integration": "hs",
                "name": "cust",
                "auth": {"type": "token", "token": PRIVATE_APP_TOKEN},
                "settings": {"sync_interval": "1d"},
            },
        )
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        started = time.monotonic()

        async def seen_by_two() -> bool:
            return (await two.get(f"/connections/{cid}")).status_code == 200

        await eventually(seen_by_two, timeout=15)
        seen_after = time.monotonic() - started

        # The worker scheduled its first sync (immediate) without a restart.
        async def synced() -> bool:
            return any(run["outcome"] == "succeeded" for run in await runs(two, cid))

        await eventually(synced, timeout=30)
        assert seen_after < 15

        # Credentials swapped: the worker's client is rebuilt with the new token (refused).
        r = await two.patch(f"/connections/{cid}", json={"auth": {"type": "token", "token": "bad"}})
        assert r.status_code == 200, r.text

        async def reloaded(count: int) -> bool:
            return (
                sum(1 for e in log_events(worker) if e.get("event") == "connections_reloaded")
                >= count
            )

        await eventually(lambda: reloaded(2), timeout=15)  # created, then patched
        before = len(await runs(one, cid))
        assert (await one.post(f"/connections/{cid}/sync")).status_code == 202

        async def failed() -> bool:
            got = await runs(one, cid)
            return len(got) > before and got[0]["outcome"] == "failed"

        await eventually(failed, timeout=30)
        r = await one.patch(
            "/connections/cust", json={"auth": {"type": "token", "token": PRIVATE_APP_TOKEN}}
        )
        assert r.status_code == 200
        await eventually(lambda: reloaded(3), timeout=15)
        assert (await two.post(f"/connections/{cid}/sync")).status_code == 202

        async def recovered() -> bool:
            got = await runs(two, cid)
            return got[0]["outcome"] == "succeeded" and len(got) > before + 1

        await eventually(recovered, timeout=30)

        # Paused through one process: the other refuses to sync it.
        assert (await one.patch("/connections/cust", json={"status": "paused"})).status_code == 200

        async def paused_on_two() -> bool:
            return (await two.post(f"/connections/{cid}/sync")).status_code == 409

        await eventually(paused_on_two, timeout=15)

        # Deleted through one process: gone from the other.
        assert (await two.delete(f"/connections/{cid}")).status_code == 204

        async def gone_from_one() -> bool:
            return (await one.get(f"/connections/{cid}")).status_code == 404

        await eventually(gone_from_one, timeout=15)
    finally:
        for api in apis:
            await api.aclose()
