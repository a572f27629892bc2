"""The circuit breaker: opens after N consecutive failures, probes half-open, recovers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from switchboard.http import CircuitOpen, ProviderRejected, ProviderUnavailable, RetryPolicy
from switchboard.http.testing import FakeClock
from switchboard.jobs import RetryLater
from tests.http.fakes import Outbounds, Recorder
from tests.http.test_retry import conn

Serve = Callable[[Any], str]
ONE_TRY = RetryPolicy(max_attempts=1)


class Flaky:
    def __init__(self) -> None:
        self.status = 503
        self.recorder = Recorder()
        self.hold = threading.Event()
        self.hold.set()

    async def endpoint(self, request: Request) -> Response:
        await self.recorder.record(request)
        while not self.hold.is_set():
            await asyncio.sleep(0.005)
        return JSONResponse({"status": self.status}, status_code=self.status)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{p:path}", self.endpoint)])


async def test_opens_after_consecutive_failures_probes_and_recovers(
    asgi_server: Serve, local: Outbounds
) -> None:
    flaky = Flaky()
    clock = FakeClock()
    outbound = local.make(
        conn(asgi_server(flaky.app)),
        None,
        clock=clock,
        policy=ONE_TRY,
        breaker_failures=3,
        breaker_cooldown=30,
    )
    crm = outbound.client("crm")

    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            await crm.request("GET", "/x")
    assert (await outbound.status("crm")).breaker == "open"

    with pytest.raises(CircuitOpen) as caught:
        await crm.request("GET", "/x")  # fails fast: no request reaches the provider
    assert caught.value.retry_after == 30
    assert len(flaky.recorder.seen) == 3
    with pytest.raises(RetryLater) as later:
        await crm.request("GET", "/x", mode="job")
    assert later.value.seconds == 30

    clock.advance(30)
    assert (await outbound.status("crm")).breaker == "half_open"
    with pytest.raises(ProviderUnavailable):
        await crm.request("GET", "/x")  # the probe fails: open again for a full cool-down
    status = await outbound.status("crm")
    assert status.breaker == "open"
    assert len(flaky.recorder.seen) == 4

    clock.advance(30)
    flaky.status = 200
    flaky.hold.clear()  # hold the probe at the provider ...
    probe = asyncio.create_task(crm.request("GET", "/x"))
    for _ in range(500):
        if len(flaky.recorder.seen) == 5:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(CircuitOpen):
        await crm.request("GET", "/x")  # ... while it is out, everyone else still fails fast
    flaky.hold.set()
    assert (await probe).status_code == 200
    assert (await outbound.status("crm")).breaker == "closed"
    assert (await crm.request("GET", "/x")).status_code == 200
    assert len(flaky.recorder.seen) == 6


async def test_4xx_and_429_do_not_count_as_failures(asgi_server: Serve, local: Outbounds) -> None:
    flaky = Flaky()
    outbound = local.make(
        conn(asgi_server(flaky.app)), None, clock=FakeClock(), policy=ONE_TRY, breaker_failures=2
    )
    crm = outbound.client("crm")
    for status in (503, 404, 503, 429, 503):
        flaky.status = status
        with pytest.raises((ProviderUnavailable, ProviderRejected)):
            await crm.request("GET", "/x")
    status = await outbound.status("crm")
    assert status.breaker == "closed"
    assert status.consecutive_failures == 1
