"""The proactive rate budget, shared through the database by several processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from switchboard.db import Database
from switchboard.http import Bucket, ProviderUnavailable
from switchboard.http.testing import FakeClock
from switchboard.jobs import RetryLater
from tests.http.fakes import Outbounds, Recorder
from tests.http.test_retry import conn

Serve = Callable[[Any], str]


def provider(recorder: Recorder, headers: list[dict[str, str]] | None = None) -> Starlette:
    """Answers 200; the n-th answer carries ``headers[n]`` (none once the list runs out)."""

    async def endpoint(request: Request) -> Response:
        seen = await recorder.record(request)
        n = recorder.seen.index(seen)
        extra = headers[n] if headers and n < len(headers) else {}
        return JSONResponse({"n": n}, headers=extra)

    return Starlette(routes=[Route("/{p:path}", endpoint, methods=["GET", "POST"])])


async def test_concurrent_requests_of_two_processes_never_exceed_the_budget_in_any_window(
    asgi_server: Serve, outbounds: Outbounds, db: Database
) -> None:
    capacity, window = 4, 1.0
    recorder = Recorder()
    conns = conn(asgi_server(provider(recorder)), rate_limit=f"{capacity}/{window}s")
    first = outbounds.make(conns, db).client("crm")
    second = outbounds.make(conns, outbounds.database()).client("crm")
    started = time.monotonic()

    await asyncio.gather(
        *(c.request("GET", "/x", mode="job") for c in [first, second] * (capacity + 2))
    )

    arrivals = sorted(s.at for s in recorder.seen)
    assert len(arrivals) == 3 * capacity
    # Any capacity + 1 consecutive arrivals span at least one window (measured at the server).
    spans = [arrivals[i + capacity] - arrivals[i] for i in range(len(arrivals) - capacity)]
    assert min(spans) >= window
    # ... and the budget is used, not wasted: three windows' worth in about three windows.
    assert time.monotonic() - started < 3 * window + 1.5


async def test_hubspot_headers_lower_the_budget(
    asgi_server: Serve, outbounds: Outbounds, db: Database
) -> None:
    spent = {
        "X-HubSpot-RateLimit-Max": "10",
        "X-HubSpot-RateLimit-Remaining": "0",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "1000",
    }
    recorder = Recorder()
    clock = FakeClock()
    url = asgi_server(provider(recorder, [spent]))
    outbound = outbounds.make(conn(url, rate_limit="10/1s"), db, clock=clock)
    crm = outbound.client("crm")

    await crm.request("GET", "/x")  # someone else spent the account's budget
    assert (await outbound.status("crm")).budgets == {"default": 0}
    await crm.request("GET", "/x")

    assert clock.sleeps == [pytest.approx(1.1)]  # one window (+ the safety margin)


async def test_limit_is_learned_from_hubspot_headers_when_not_configured(
    asgi_server: Serve, outbounds: Outbounds, db: Database
) -> None:
    first = {
        "X-HubSpot-RateLimit-Max": "2",
        "X-HubSpot-RateLimit-Remaining": "1",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "1000",
    }
    recorder = Recorder()
    clock = FakeClock()
    crm = outbounds.make(conn(asgi_server(provider(recorder, [first]))), db, clock=clock)
    client = crm.client("crm")

    for _ in range(3):
        await client.request("GET", "/x")

    # Learned 2/1s with one spent; the second call takes the last token, the third waits.
    assert clock.sleeps == [pytest.approx(1.1)]


async def test_rate_limit_reset_header_blocks_every_process_until_the_reset(
    asgi_server: Serve, outbounds: Outbounds, db: Database
) -> None:
    acme = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "120"}
    recorder = Recorder()
    clock = FakeClock()
    conns = conn(asgi_server(provider(recorder, [acme])), rate_limit="10/60s")
    crm = outbounds.make(conns, db, clock=clock).client("crm")
    other = outbounds.make(conns, outbounds.database(), clock=clock).client("crm")

    await crm.request("GET", "/v1/acme/contacts")
    with pytest.raises(ProviderUnavailable) as caught:
        await other.request("GET", "/v1/acme/contacts")  # request path: far too long
    assert caught.value.retry_after == pytest.approx(120)
    with pytest.raises(RetryLater) as later:
        await crm.request("GET", "/v1/acme/contacts", mode="job")  # longer than a job waits
    assert later.value.seconds == pytest.approx(120)
    assert len(recorder.seen) == 1
    assert clock.sleeps == []


async def test_endpoint_class_has_its_own_bucket(
    asgi_server: Serve, outbounds: Outbounds, db: Database
) -> None:
    search = Bucket("search", "2/1s")
    recorder = Recorder()
    clock = FakeClock()
    outbound = outbounds.make(
        conn(asgi_server(provider(recorder)), rate_limit="100/10s"), db, clock=clock
    )
    crm = outbound.client("crm")

    for _ in range(2):
        await crm.request("POST", "/search", json={}, bucket=search, idempotent=True)
    for _ in range(5):
        await crm.request("GET", "/list")  # the default bucket is not affected
    assert clock.sleeps == []
    await crm.request("POST", "/search", json={}, bucket=search, idempotent=True)
    assert clock.sleeps == [pytest.approx(1.1)]
    assert (await outbound.status("crm")).budgets == {"search": 1, "default": 95}
