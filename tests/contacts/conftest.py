"""Fixtures for contacts: the HubSpot and ACME simulators on real ports (fresh per test), a hub
wired to them, syncs run as ``switchboard sync`` runs them, and the hub served over HTTP for the
simulators' webhooks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from switchboard.config import Config, HubConfig, Settings
from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from switchboard.db import Database
from switchboard.http import Outbound
from switchboard.sandbox import AcmeSimulator, Sandbox, zero_config
from switchboard.syncs import service as syncs
from switchboard.syncs.registry import SyncResult
from tests.support import API_KEY, Backend, make_settings, when_free


@pytest.fixture
def box() -> Iterator[Sandbox]:
    with Sandbox(only=["hubspot", "acme"]) as sandbox:
        assert sandbox.acme is not None
        sandbox.acme.rate_limit = 10_000  # the real 10/min would make tests wait minutes
        yield sandbox


@pytest.fixture
def hubspot(box: Sandbox) -> HubSpotSimulator:
    assert box.hubspot is not None
    return box.hubspot


@pytest.fixture
def acme(box: Sandbox) -> AcmeSimulator:
    assert box.acme is not None
    return box.acme


@pytest.fixture
def archived_interval() -> str | None:
    return None  # the default: every HubSpot sync lists archived contacts


@pytest.fixture
def hub_config(box: Sandbox, archived_interval: str | None) -> HubConfig:
    data = zero_config(box.urls)
    data["connections"]["acme"].pop("rate_limit")
    if archived_interval is not None:
        data["connections"]["hubspot"]["archived_interval"] = archived_interval
    return HubConfig.model_validate(data)


@pytest.fixture
def settings(backend: Backend, tmp_path: Any) -> Settings:
    # Waits stay real but short: retry budgets are the only slow path, and tests that need a
    # failure fast set the simulator's faults so the first answer decides.
    return make_settings(
        backend, tmp_path, api_keys=[API_KEY], http_max_attempts=3, http_request_max_wait=2.0
    )


@pytest.fixture
async def outbound(config: Config, db: Database) -> AsyncIterator[Outbound]:
    out = Outbound(config, db)
    yield out
    await out.aclose()


SyncNow = Callable[..., Any]


@pytest.fixture
def sync_now(config: Config, db: Database, outbound: Outbound) -> SyncNow:
    """``await sync_now("hubspot", full=False)`` → ``(run, result, error)``, as the CLI runs it."""

    async def run(
        name: str = "hubspot", *, full: bool = False
    ) -> tuple[Any, SyncResult | None, str | None]:
        return await when_free(lambda: syncs.run_now(config, db, outbound, name, full=full))

    return run


class _NoLifespan:
    """Serve an app whose lifespan the test already runs (uvicorn would run it a second time)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await self.app(scope, receive, send)


@pytest.fixture
async def hub_url(app: Any) -> AsyncIterator[str]:
    """The app under test on a real loopback port (webhook senders need one), served in the
    test's own event loop: the app's database handles belong to it."""
    server = uvicorn.Server(
        uvicorn.Config(
            _NoLifespan(app), host="127.0.0.1", port=0, log_config=None, access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or task.done():
            raise RuntimeError("hub server did not start")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


async def all_contacts(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every contact through ``GET /contacts``, page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/contacts", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def simulator_view(hubspot: HubSpotSimulator) -> dict[str, dict[str, Any]]:
    """The simulator's live contacts in the hub's terms, by external id."""
    out = {}
    for c in hubspot.store.active():
        p = c.properties
        out[str(c.id)] = {
            "email": p.get("email"),
            "firstName": p.get("firstname"),
            "lastName": p.get("lastname"),
            "phone": p.get("phone"),
            "company": p.get("company"),
        }
    return out


def hub_view(items: list[dict[str, Any]], connection: str = "hubspot") -> dict[str, dict[str, Any]]:
    out = {}
    for item in items:
        if item["connection"] != connection or item["deletedAt"] is not None:
            continue
        assert item["externalId"] not in out, "duplicate contact"
        out[item["externalId"]] = {
            k: item[k] for k in ("email", "firstName", "lastName", "phone", "company")
        }
    return out
