"""The proactive rate budget, shared through the database by several processes."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from switchboard.db import Database
from switchboard.http import Bucket, Limit, ProviderUnavailable
from switchboard.http._budget import BudgetExhausted, DatabaseStore, LocalBudget, MemoryStore
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


# --- lease-ahead: a process takes a block of tokens per write -----------------------------------


def process(db: Database, limit: Limit, clock: FakeClock) -> LocalBudget:
    """One process's view of the ``crm`` default bucket, on its own connection pool."""
    return LocalBudget("crm", "default", limit, DatabaseStore(db, clock), clock)


async def drain(budget: LocalBudget) -> int:
    """Take every token to be had without waiting; how many that was."""
    taken = 0
    while True:
        try:
            await budget.acquire(0)
        except BudgetExhausted:
            return taken
        taken += 1


async def test_leases_of_two_processes_never_put_more_than_the_capacity_in_a_window(
    outbounds: Outbounds, db: Database
) -> None:
    limit = Limit(40, 1.0)  # blocks of up to 4 tokens, each to be sent within 0.05 s
    clock = FakeClock()
    processes = [process(db, limit, clock), process(outbounds.database(), limit, clock)]
    rng = random.Random(21)
    sent: list[float] = []

    async def send(budget: LocalBudget) -> None:
        await budget.acquire(60)
        sent.append(clock.monotonic())

    # Bursts and lulls, some longer than a lease may be kept (so leases lapse and are handed
    # back), offered faster than the capacity (so the processes wait on each other).
    for _ in range(600):
        clock.advance(rng.choice([0.0, 0.0, 0.001, 0.004, 0.02, 0.08]))
        budget = rng.choice(processes)
        await asyncio.gather(*(send(budget) for _ in range(rng.choice([1, 1, 1, 3]))))

    sent.sort()
    spans = [sent[i + limit.capacity] - sent[i] for i in range(len(sent) - limit.capacity)]
    assert min(spans) >= limit.window
    # ... and what was leased ahead but not sent went back: the budget is used, not wasted.
    elapsed = sent[-1] - sent[0]
    assert len(sent) >= 0.85 * limit.capacity * elapsed / (limit.window + limit.margin)


async def test_an_abandoned_lease_holds_its_tokens_for_one_window_at_most(
    outbounds: Outbounds, db: Database
) -> None:
    limit = Limit(100, 10.0)
    clock = FakeClock()
    # A process leases a full block, then is killed before sending any of it.
    lost = await DatabaseStore(outbounds.database(), clock).lease("crm", "default", limit, 10)
    assert lost.granted == limit.block == 10
    other = process(db, limit, clock)
    clock.advance(5)

    assert await drain(other) == 90  # the dead process's lease is all it took
    with pytest.raises(BudgetExhausted) as caught:
        await other.acquire(0)
    assert caught.value.wait == pytest.approx(limit.window + limit.margin - 5)
    clock.advance(caught.value.wait)  # the lease's window (and margin) is over

    assert await drain(other) == 10  # back, while the other's own 90 are still in the window


async def test_a_lapsed_lease_is_handed_back_with_the_next_one(
    outbounds: Outbounds, db: Database
) -> None:
    limit = Limit(100, 10.0)
    clock = FakeClock(start=1_796_649_123.4567891)  # grant times must round-trip the row
    first = process(db, limit, clock)
    for _ in range(8):
        await first.acquire(0)  # leases of 1, 2, 4 and 8: 7 of the last unsent
    assert first.remaining == 100 - 8
    clock.advance(limit.margin)  # too late to send them

    await first.acquire(0)  # a new lease (of 1: as many as the last one used), handing 7 back

    second = process(outbounds.database(), limit, clock)
    assert await drain(second) == 100 - 9
    assert second.remaining == 0


async def test_sequential_calls_lease_blocks_not_single_tokens() -> None:
    class Counting(MemoryStore):
        leases = 0

        async def lease(self, *args: Any, **kwargs: Any) -> Any:
            self.leases += 1
            return await super().lease(*args, **kwargs)

    clock = FakeClock()
    store = Counting(clock)
    budget = LocalBudget("crm", "default", Limit(1000, 10.0), store, clock)

    for _ in range(100):
        await budget.acquire(0)

    assert store.leases == 7  # 1 + 2 + 4 + ... + 64 tokens
    assert budget.remaining == 900


async def test_provider_headers_pace_a_process_holding_a_lease(
    asgi_server: Serve, outbounds: Outbounds, db: Database
) -> None:
    spent = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "5"}
    recorder = Recorder()
    clock = FakeClock()
    url = asgi_server(provider(recorder, [{}, {}, {}, spent]))
    outbound = outbounds.make(conn(url, rate_limit="100/10s"), db, clock=clock)
    crm = outbound.client("crm")

    for _ in range(4):
        await crm.request("GET", "/x")  # the fourth leases 4 tokens, and sends one
    assert clock.sleeps == []
    assert (await outbound.status("crm")).budgets == {"default": 0}
    await crm.request("GET", "/x")  # not on the 3 tokens left of its lease

    assert clock.sleeps == [pytest.approx(5)]
    assert len(recorder.seen) == 5
