"""Fixtures for the sandbox tests: simulators on real loopback ports and a webhook receiver."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchboard.connectors.xml_feed.simulator import find_fever_dir

# The provider's sample feeds, shipped as package data of the simulator.
FEVER_DIR = find_fever_dir()


@dataclass
class Received:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook subscriber: records every request; answers ``fail_status`` to the first
    ``fail_first`` of them, 200 afterwards."""

    fail_first: int = 0
    fail_status: int = 500
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            received = Received(
                request.method, str(request.url), dict(request.headers), await request.body()
            )
            with self.lock:
                self.requests.append(received)
                failing = len(self.requests) <= self.fail_first
            return Response(status_code=self.fail_status if failing else 200)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


@pytest.fixture
def receiver(asgi_server: Callable[[Any], str]) -> Callable[..., tuple[Receiver, str]]:
    """``receiver(fail_first=0) -> (Receiver, url)``."""

    def start(**kw: Any) -> tuple[Receiver, str]:
        rec = Receiver(**kw)
        return rec, asgi_server(rec.app()) + "/hook"

    return start
