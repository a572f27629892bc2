"""A worker killed in the middle of a user's propagation: the CRM still gets the update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig
from switchboard.sandbox import Sandbox, zero_config
from tests.support import Backend, Process, eventually, switchboard_env


@pytest.fixture
def runtime_enabled() -> bool:
    return False  # the worker subprocesses are the only workers


@pytest.fixture
def hub_config(sandbox: Sandbox) -> HubConfig:
    return HubConfig.model_validate(zero_config(sandbox.urls))


def write_config(tmp_path: Path, sandbox: Sandbox) -> None:
    (tmp_path / "switchboard.toml").write_text(
        "[connections.hubspot]\n"
        'kind = "hubspot"\n'
        f'base_url = "{sandbox.urls["hubspot"]}"\n'
        'auth = { type = "token", token = "pat-sandbox" }\n'
        "[users]\n"
        'crm_connection = "hubspot"\n'
    )


async def test_worker_killed_mid_job_delivers_later(
    client: httpx.AsyncClient, sandbox: Sandbox, backend: Backend, tmp_path: Path
) -> None:
    write_config(tmp_path, sandbox)
    env = switchboard_env(backend, tmp_path, SWITCHBOARD_JOB_LEASE_SECONDS="1.5")
    hubspot = httpx.Client(base_url=sandbox.urls["hubspot"], timeout=10)
    hubspot.put("/_sandbox/faults", json={"latency_ms": 30_000})  # every call hangs
    first = Process(["worker"], env, tmp_path, tmp_path / "w1.log")
    second = None
    try:
        r = await client.patch("/users/k1", json={"email": "killed@example.com", "firstName": "K"})
        assert r.status_code == 200

        async def running() -> bool:
            items = (await client.get("/admin/jobs", params={"state": "running"})).json()["items"]
            return any(j["kind"] == "users.propagate" for j in items)

        await eventually(running, timeout=30)
        first.kill()
        hubspot.delete("/_sandbox/faults")
        second = Process(["worker"], env, tmp_path, tmp_path / "w2.log")

        async def synced() -> bool:
            body: dict[str, Any] = (await client.get("/users/k1")).json()
            return body["sync"]["state"] == "synced"

        await eventually(synced, timeout=30)
        found = hubspot.get(
            "/crm/v3/objects/contacts/killed@example.com",
            params={"idProperty": "email", "properties": "firstname"},
            headers={"Authorization": "Bearer pat-sandbox"},
        )
        assert found.status_code == 200 and found.json()["properties"]["firstname"] == "K"
    finally:
        first.stop()
        if second is not None:
            second.stop()
        hubspot.close()


async def test_worker_killed_mid_batch_every_user_is_synced_once(
    client: httpx.AsyncClient, sandbox: Sandbox, backend: Backend, tmp_path: Path
) -> None:
    write_config(tmp_path, sandbox)
    env = switchboard_env(backend, tmp_path, SWITCHBOARD_JOB_LEASE_SECONDS="1.5")
    hubspot = httpx.Client(base_url=sandbox.urls["hubspot"], timeout=10)
    hubspot.put("/_sandbox/faults", json={"latency_ms": 30_000})
    first = Process(["worker"], env, tmp_path, tmp_path / "w1.log")
    second = None
    items = [
        {"id": f"m{i:02}", "email": f"m{i}@example.com", "firstName": f"M{i}"} for i in range(40)
    ]
    try:
        r = await client.post("/users/batch", json={"items": items})
        assert r.status_code == 200 and len(r.json()["items"]) == 40

        async def batch_running() -> bool:
            jobs = (
                await client.get(
                    "/admin/jobs", params={"state": "running", "kind": "users.propagate"}
                )
            ).json()["items"]
            return len(jobs) == 40 and len({j["batch"] for j in jobs}) == 1

        await eventually(batch_running, timeout=30)
        first.kill()
        hubspot.delete("/_sandbox/faults")
        hubspot.delete("/_sandbox/requests")
        second = Process(["worker"], env, tmp_path, tmp_path / "w2.log")

        async def all_synced() -> bool:
            users = (await client.get("/users", params={"limit": 100})).json()["items"]
            return len(users) == 40 and all(u["sync"]["state"] == "synced" for u in users)

        await eventually(all_synced, timeout=30)
        contacts = hubspot.get("/_sandbox/hubspot/state").json()["contacts"]
        assert contacts == 40  # none created twice
        for i in (0, 17, 39):
            found = hubspot.get(
                f"/crm/v3/objects/contacts/m{i}@example.com",
                params={"idProperty": "email", "properties": "firstname"},
                headers={"Authorization": "Bearer pat-sandbox"},
            )
            assert found.json()["properties"]["firstname"] == f"M{i}"
        log = hubspot.get("/_sandbox/requests").json()["requests"]
        assert sum(r.get("inputs", 0) for r in log if r["status"] == 200) == 40
    finally:
        first.stop()
        if second is not None:
            second.stop()
        hubspot.close()
