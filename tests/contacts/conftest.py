"""Fixtures for contacts: the HubSpot and ACME simulators on real ports (fresh per test), a hub
wired to them, syncs run as ``switchboard sync`` runs them, and the hub served over HTTP for the
simulators' webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from switchboard.config import Config, HubConfig, Settings
from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from switchboard.db import Database
from switchboard.http import Outbound
from switchboard.sandbox import AcmeSimulator, Sandbox, zero_config
from switchboard.syncs import service as syncs
from switchboard.syncs.registry import SyncResult
from tests.support import API_KEY, Backend, make_settings, serve_in_loop, when_free


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


@pytest.fixture
async def hub_url(app: Any) -> AsyncIterator[str]:
    """The app under test on a real loopback port (webhook senders need one)."""
    async with serve_in_loop(app) as url:
        yield url


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
