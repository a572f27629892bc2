"""Replaying the provider's sample responses through the sandbox, over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from switchboard.config import Config
from switchboard.connectors.xml_feed.simulator import EventFeedSimulator
from switchboard.db import Database
from switchboard.events.service import plan_uuid
from tests.events.conftest import CONNECTION, SyncNow

WINDOW = {"starts_at": "2021-02-01T00:00:00Z", "ends_at": "2022-07-03T00:00:00Z"}


def event(base: str, plan: str, title: str, start: str, end: str, low: float, high: float) -> Any:
    start_date, start_time = start.split("T")
    end_date, end_time = end.split("T")
    return {
        "id": plan_uuid(CONNECTION, base, plan),
        "title": title,
        "start_date": start_date,
        "start_time": start_time,
        "end_date": end_date,
        "end_time": end_time,
        "min_price": low,
        "max_price": high,
    }


PANTOMIMA_1642 = event(
    "322", "1642", "Pantomima Full", "2021-02-10T20:00:00", "2021-02-10T21:30:00", 55.0, 55.0
)
PANTOMIMA_1643 = event(
    "322", "1643", "Pantomima Full", "2021-02-11T20:00:00", "2021-02-11T21:30:00", 55.0, 55.0
)
CAMELA = event(
    "291", "291", "Camela en concierto", "2021-06-30T21:00:00", "2021-06-30T21:30:00", 15.0, 30.0
)
MORANCOS = event(
    "1591", "1642", "Los Morancos", "2021-07-31T20:00:00", "2021-07-31T21:00:00", 65.0, 75.0
)

# FEVER.md's expected answer after responses 1, 2, 3, in start order.
EXPECTED = {
    "planList": [PANTOMIMA_1642, PANTOMIMA_1643, CAMELA, MORANCOS],
    "eventList": [PANTOMIMA_1642, CAMELA, MORANCOS],
}


@pytest.mark.parametrize("dialect", ["planList", "eventList"])
async def test_responses_1_2_3_give_the_expected_answer(
    dialect: str, feed: EventFeedSimulator, sync_now: SyncNow, fresh_search: Any
) -> None:
    feed.configure(dialect=dialect)
    for _ in range(3):
        _run, result, error = await sync_now()
        assert error is None, error
    response = await fresh_search(**WINDOW)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"data": {"events": EXPECTED[dialect]}, "error": None}
    for item in response.json()["data"]["events"]:
        assert uuid.UUID(item["id"]).version == 5
    # Base plan 444 (offline, impossible date) was skipped and counted in runs 2 and 3.
    assert result is not None and result.skipped == 1
    assert result.detail["skipped_reasons"] == {"bad_date": 1}


async def test_latest_values_win_and_a_plan_that_leaves_keeps_its_last_values(
    feed: EventFeedSimulator, sync_now: SyncNow, fresh_search: Any
) -> None:
    await sync_now()
    first = (await fresh_search()).json()["data"]["events"]
    assert [e["end_time"] for e in first if e["title"] == "Los Morancos"] == ["21:00:00"]

    await sync_now()  # response 2: 1591 ends 21:20, 322 is gone
    second = (await fresh_search()).json()["data"]["events"]
    morancos = [e for e in second if e["title"] == "Los Morancos"]
    assert [e["end_time"] for e in morancos] == ["21:20:00"]
    assert PANTOMIMA_1642 in second and PANTOMIMA_1643 in second

    await sync_now()  # response 3: and back to 21:00
    third = (await fresh_search()).json()["data"]["events"]
    assert MORANCOS in third
    assert [e["id"] for e in third] == [e["id"] for e in EXPECTED["planList"]]


async def test_open_and_narrow_ranges(
    feed: EventFeedSimulator, sync_now: SyncNow, fresh_search: Any
) -> None:
    for _ in range(3):
        await sync_now()
    everything = (await fresh_search()).json()["data"]["events"]
    assert everything == EXPECTED["planList"]
    only_feb = await fresh_search(ends_at="2021-02-11T00:00:00Z")
    assert only_feb.json()["data"]["events"] == [PANTOMIMA_1642]
    from_july = await fresh_search(starts_at="2021-07-01T00:00:00Z")
    assert from_july.json()["data"]["events"] == [MORANCOS]
    # Bounds are inclusive: start >= starts_at and end <= ends_at.
    exact = await fresh_search(starts_at="2021-06-30T21:00:00Z", ends_at="2021-06-30T21:30:00Z")
    assert exact.json()["data"]["events"] == [CAMELA]
    # Ends one second too late for the window: not included.
    short = await fresh_search(starts_at="2021-06-30T21:00:00Z", ends_at="2021-06-30T21:29:59Z")
    assert short.json()["data"]["events"] == []
    # An offset in the query is honoured: 22:00+01:00 is 21:00Z.
    offset = await fresh_search(
        starts_at="2021-06-30T22:00:00+01:00", ends_at="2021-06-30T22:30:00+01:00"
    )
    assert offset.json()["data"]["events"] == [CAMELA]
    nothing = await fresh_search(starts_at="2030-01-01T00:00:00Z")
    assert nothing.json() == {"data": {"events": []}, "error": None}


async def test_ids_stay_the_same_across_restarts_and_stores(
    feed: EventFeedSimulator,
    sync_now: SyncNow,
    fresh_search: Any,
    client: httpx.AsyncClient,
    config: Config,
    db: Database,
) -> None:
    from switchboard.app import create_app

    for _ in range(3):
        await sync_now()
    before = (await fresh_search()).json()
    # A restart: a new process (app and database handle) over the same store.
    restarted = create_app(config, runtime=False)
    async with restarted.router.lifespan_context(restarted):
        transport = httpx.ASGITransport(app=restarted)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub", headers=dict(client.headers)
        ) as other:
            assert (await other.get("/search")).json() == before
    # Fetching the same documents again (full re-ingest) changes no id.
    feed.rewind()
    for _ in range(3):
        _run, _result, error = await sync_now(full=True)
        assert error is None
    assert (await fresh_search()).json() == before


async def test_a_feed_that_does_not_change_writes_nothing(
    feed: EventFeedSimulator, sync_now: SyncNow, db: Database
) -> None:
    from switchboard.events.versions import current_version

    feed.configure(mode="generated", base_plans=20, plans=3, zones=4)
    _, first, _ = await sync_now()
    assert first is not None and first.upserted > 0
    async with db.read_session() as session:
        version = await current_version(session)
    _, again, error = await sync_now()
    assert error is None and again is not None
    assert again.upserted == 0 and again.detail.get("unchanged") is True
    _, forced, _ = await sync_now(full=True)  # parsed and compared plan by plan: still nothing
    assert (
        forced is not None
        and forced.upserted == 0
        and forced.detail["unchanged"]
        == 60 - sum(forced.detail.get("skipped_reasons", {}).values())
    )
    async with db.read_session() as session:
        assert await current_version(session) == version
