"""``PipedriveClient`` against the simulator: pagination, search, the envelope, and rate limits
handled by the outbound layer (429 + Retry-After retried; the headers read)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from switchboard.connectors.crm import MalformedResponse
from switchboard.connectors.pipedrive.client import PipedriveClient
from switchboard.connectors.pipedrive.ratelimit import read_headers
from switchboard.connectors.pipedrive.settings import PipedriveConnection
from switchboard.connectors.pipedrive.simulator import PipedriveSimulator
from switchboard.errors import TransientError
from switchboard.http import Limit, Outbound
from switchboard.http.testing import FakeClock
from tests.connectors.pipedrive.conftest import NAME, connection, hub_config
from tests.support import Backend, make_settings


@pytest.fixture
def client(outbound: Outbound, conn: PipedriveConnection) -> PipedriveClient:
    return PipedriveClient(outbound.client(NAME), conn, mode="request")


async def test_pages_follow_next_start_to_the_end(
    client: PipedriveClient, sim: PipedriveSimulator
) -> None:
    sim.store.seed(12)
    sim.store.delete(3)
    ids: list[int] = []
    start: int | None = 0
    pages = 0
    while start is not None:
        persons, start = await client.list_page(start=start, limit=5)
        ids += [p["id"] for p in persons]
        pages += 1
    assert pages == 3
    assert ids == [i for i in range(1, 13) if i != 3]  # active only, by id
    queries = [e["query"] for e in sim.log.entries()]
    assert "start=0&limit=5" in queries[0] and "start=5&limit=5" in queries[1]


async def test_an_empty_account_lists_no_persons(client: PipedriveClient) -> None:
    # Pipedrive answers data: null (not []) when there is nothing to list.
    assert await client.list_page() == ([], None)


async def test_search_pages_and_matches_exactly(
    client: PipedriveClient, sim: PipedriveSimulator
) -> None:
    for n in range(3):
        sim.store.create({"name": f"Twin {n}", "email": "twin@example.com"})
    sim.store.create({"name": "Near", "email": "twin@example.com.au"})
    items, next_start = await client.search(term="twin@example.com", limit=2)
    assert [i["id"] for i in items] == [1, 2] and next_start == 2
    items, next_start = await client.search(term="twin@example.com", start=2, limit=2)
    assert [i["id"] for i in items] == [3] and next_start is None
    assert items[0]["emails"] == ["twin@example.com"]
    loose, _ = await client.search(term="twin@example", exact_match=False)
    assert len(loose) == 4


async def test_the_budget_paces_by_the_rate_limit_headers_so_no_429_comes(
    client: PipedriveClient, sim: PipedriveSimulator, clock: FakeClock
) -> None:
    sim.rate_limit = 2  # per 2 s window, per token
    await client.get(person_id="1")
    await client.get(person_id="1")  # x-ratelimit-remaining: 0, reset in 2 s
    assert await client.get(person_id="1") is None
    statuses = [e["status"] for e in sim.log.entries()]
    assert statuses == [404, 404, 404]  # the third waited for the window instead of a 429
    assert len(clock.sleeps) == 1 and 0 < clock.sleeps[0] <= 2.0


async def test_a_429_is_waited_out_as_retry_after_says(
    client: PipedriveClient, sim: PipedriveSimulator, clock: FakeClock
) -> None:
    sim.faults.update(storm=True, storm_retry_after=3)
    with pytest.raises(TransientError):
        await client.get(person_id="1")
    assert clock.sleeps[:1] == [3.0]  # Retry-After, exactly


async def test_a_429_storm_gives_up_as_a_transient_error(
    client: PipedriveClient, sim: PipedriveSimulator
) -> None:
    sim.faults.update(storm=True, storm_retry_after=1)
    with pytest.raises(TransientError) as caught:
        await client.get(person_id="1")
    assert caught.value.provider_status == 429
    assert caught.value.provider_message == "Request over limit"
    assert sim.log.count() == 4  # http_max_attempts


async def test_the_rate_limit_headers_are_read(sim: PipedriveSimulator, sim_url: str) -> None:
    sim.rate_limit = 3
    token = connection(sim_url).api_token
    assert token is not None
    async with httpx.AsyncClient(base_url=sim_url) as http:
        headers = {"x-api-token": token.get_secret_value()}
        first = await http.get("/v1/persons", headers=headers)
        reading = read_headers(first.headers, time.time())
        assert (reading.limit, reading.remaining) == (Limit(3, 2.0), 2)
        assert reading.reset_in is not None and 0 < reading.reset_in <= 2
        for _ in range(2):
            await http.get("/v1/persons", headers=headers)
        refused = await http.get("/v1/persons", headers=headers)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
    assert read_headers(refused.headers, time.time()).remaining == 0
    assert refused.json() == {
        "success": False,
        "error": "Request over limit",
        "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
        "data": None,
        "additional_data": None,
    }


def test_unreadable_headers_read_as_nothing() -> None:
    for limit, remaining, reset in (("0", "x", "nan"), ("inf", "inf", "inf"), ("-1", "", "-inf")):
        reading = read_headers(
            httpx.Headers(
                {
                    "x-ratelimit-limit": limit,
                    "x-ratelimit-remaining": remaining,
                    "x-ratelimit-reset": reset,
                }
            ),
            time.time(),
        )
        assert reading.limit is reading.remaining is reading.reset_in is None, (limit, reset)


async def test_an_answer_outside_the_envelope_is_malformed(asgi_server: Any, tmp_path: Any) -> None:
    async def wrong(_: Request) -> JSONResponse:
        pagination = {"more_items_in_collection": True, "next_start": 0}  # going backwards
        return JSONResponse(
            {"success": True, "data": [], "additional_data": {"pagination": pagination}}
        )

    async def unsuccessful(_: Request) -> JSONResponse:
        return JSONResponse({"success": False, "data": {"id": 1}})

    async def nothing_found(_: Request) -> JSONResponse:
        return JSONResponse({"success": True, "data": None})

    url = asgi_server(
        Starlette(
            routes=[
                Route("/v1/persons", wrong),
                Route("/v1/persons/1", unsuccessful),
                Route("/v1/persons/search", nothing_found),
            ]
        )
    )
    conn = connection(url)
    settings = make_settings(Backend("sqlite+aiosqlite:///unused.db", None), tmp_path)
    outbound = Outbound(hub_config(settings, conn), clock=FakeClock())
    try:
        bad = PipedriveClient(outbound.client(NAME), conn, mode="request")
        with pytest.raises(MalformedResponse):
            await bad.list_page()
        with pytest.raises(MalformedResponse):
            await bad.get(person_id="1")
        assert await bad.search(term="a@b.io") == ([], None)  # data null: no match
    finally:
        await outbound.aclose()
