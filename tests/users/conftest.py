"""Fixtures for users → CRM: the HubSpot simulator on a real port (fresh per test) and a hub
wired to it with its embedded runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from switchboard.config import HubConfig, Settings
from switchboard.sandbox import Sandbox, zero_config
from tests.contacts.conftest import hub_url  # noqa: F401 - the hub on a real port (webhooks)
from tests.support import API_KEY, Backend, eventually, make_settings, no_scheduled_syncs


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(only=["hubspot"])
    box.start()
    yield box
    box.stop()


@pytest.fixture
def create_missing() -> bool:
    return True


@pytest.fixture
def users_concurrency() -> int:
    return 4


@pytest.fixture
def hub_config(sandbox: Sandbox, create_missing: bool, users_concurrency: int) -> HubConfig:
    data = no_scheduled_syncs(zero_config(sandbox.urls))  # these tests count CRM requests
    data["users"]["create_missing"] = create_missing
    data["users"]["concurrency"] = users_concurrency
    return HubConfig.model_validate(data)


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    # One outbound try per job run (the job retries), any provider wait becomes RetryLater,
    # and a short breaker cool-down: the tests watch job-level behaviour, quickly.
    return make_settings(
        backend,
        tmp_path,
        api_keys=[API_KEY],
        http_max_attempts=1,
        http_job_max_wait=0,
        http_breaker_cooldown=0.2,
    )


@pytest.fixture
def runtime_enabled() -> bool:
    return True


@pytest.fixture
def hubspot(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.urls["hubspot"], timeout=10) as c:
        yield c


@pytest.fixture(autouse=True)
async def first_syncs_done(
    client: httpx.AsyncClient, runtime_enabled: bool, sandbox: Sandbox
) -> None:
    """The runtime syncs every CRM connection once at start (listings): these tests count the
    calls their own propagation makes, so they begin after those syncs, with empty logs."""
    if not runtime_enabled:
        return
    names = [
        c["name"]
        for c in (await client.get("/connections")).json()["items"]
        if c["kind"] in ("hubspot", "mapped_crm")
    ]

    async def synced() -> bool:
        for name in names:
            runs = (await client.get(f"/connections/{name}/runs", params={"limit": 1})).json()
            if not runs["items"] or runs["items"][0]["outcome"] == "running":
                return False
        return True

    await eventually(synced, timeout=30)
    for url in sandbox.urls.values():
        httpx.delete(f"{url}/_sandbox/requests", timeout=10)
