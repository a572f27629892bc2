"""Fixtures for the Pipedrive package: the simulator on a real loopback port, and a connection
to it built the way the hub builds one (an ``Outbound`` over the connections file's models).

The adapter-level tests build the config from the validated ``PipedriveConnection`` model;
``test_hub.py`` goes through a connections file and the whole app.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from switchboard.config import Config, HubConfig
from switchboard.connectors.pipedrive.contacts import PipedriveContacts
from switchboard.connectors.pipedrive.settings import PipedriveConnection
from switchboard.connectors.pipedrive.simulator import API_TOKEN, PipedriveSimulator
from switchboard.http import Outbound
from switchboard.http.testing import FakeClock
from tests.support import Backend, make_settings

NAME = "pipedrive"


@pytest.fixture
def clock() -> FakeClock:
    """One clock for the hub's outbound layer and the simulator's rate windows: a Retry-After
    the client sleeps on moves the simulator's time too. It starts at the real time: the hub
    stamps a person that vanished without a trace with its own clock."""
    return FakeClock(start=time.time())


@pytest.fixture
def sim(clock: FakeClock) -> PipedriveSimulator:
    return PipedriveSimulator(rate_limit=10_000, clock=clock.time)


@pytest.fixture
def sim_url(sim: PipedriveSimulator, asgi_server: Callable[[Any], str]) -> str:
    return asgi_server(sim.app)


def connection(url: str, **overrides: Any) -> PipedriveConnection:
    values: dict[str, Any] = {"kind": "pipedrive", "base_url": url, "api_token": API_TOKEN}
    values.update(overrides)
    return PipedriveConnection.model_validate(values)


def hub_config(settings: Any, conn: PipedriveConnection) -> Config:
    # model_construct: the union of connection kinds does not include Pipedrive yet.
    return Config(settings, HubConfig.model_construct(connections={NAME: conn}), None)


@pytest.fixture
def conn(sim_url: str) -> PipedriveConnection:
    return connection(sim_url)


@pytest.fixture
async def outbound(
    conn: PipedriveConnection, clock: FakeClock, tmp_path: Any
) -> AsyncIterator[Outbound]:
    settings = make_settings(Backend("sqlite+aiosqlite:///unused.db", None), tmp_path)
    out = Outbound(hub_config(settings, conn), clock=clock)
    yield out
    await out.aclose()


@pytest.fixture
def crm(outbound: Outbound, conn: PipedriveConnection) -> PipedriveContacts:
    return PipedriveContacts(outbound.client(NAME), conn, mode="request")
