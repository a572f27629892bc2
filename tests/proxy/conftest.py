"""Fixtures for the proxy: the HubSpot simulator on a real port, behind a recorder of what
arrived on the wire (the simulator's own request log keeps no headers), and the hub on a real
port for what only a socket can send (a literal ``..``) or show (a body still arriving)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from switchboard.connectors.hubspot.simulator.errors import rate_limited
from tests.contacts.conftest import hub_url  # noqa: F401 - the hub on a real port


@dataclass
class Arrival:
    method: str
    path: str
    query: bytes
    headers: dict[str, str]


@dataclass
class Wire:
    """An ASGI front of a provider app: records every API request's method, path and headers,
    and answers the next ``throttle`` of them with HubSpot's own 429 (``Retry-After`` given)."""

    app: Any
    seen: list[Arrival] = field(default_factory=list)
    throttle: int = 0
    retry_after: str = "0"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            self.seen.append(
                Arrival(scope["method"], scope["path"], scope["query_string"], headers)
            )
            throttled = self.throttle > 0
            self.throttle -= 1 if throttled else 0
        if throttled:
            response = rate_limited("TEN_SECONDLY_ROLLING")
            response.headers["Retry-After"] = self.retry_after
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def api_calls(self) -> list[Arrival]:
        return [a for a in self.seen if not a.path.startswith("/oauth/")]


@pytest.fixture
def hubspot() -> HubSpotSimulator:
    return HubSpotSimulator()


@pytest.fixture
def wire(hubspot: HubSpotSimulator) -> Wire:
    return Wire(hubspot.app)


@pytest.fixture
def hubspot_url(asgi_server: Callable[[Any], str], wire: Wire) -> str:
    return asgi_server(wire)


@pytest.fixture
def hubspot_http(hubspot_url: str) -> Iterator[httpx.Client]:
    """The simulator's control endpoints (no auth, never faulted)."""
    with httpx.Client(base_url=hubspot_url, timeout=10) as c:
        yield c
