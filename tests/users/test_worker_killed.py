"""A worker killed in the middle of a user's propagation: the CRM still gets the update."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig
from switchboard.sandbox import Sandbox, zero_config
from tests.support import Backend, Process, eventually, switchboard_env


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(only=["hubspot"])
    box.start()
    yield box
    box.stop()


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
