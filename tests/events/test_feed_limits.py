"""A provider that drops the connection mid-body: a provider failure that changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from switchboard.connectors.xml_feed.simulator import EventFeedSimulator
from switchboard.db import Database
from switchboard.models import SyncRun
from tests.events.conftest import CONNECTION, SyncNow
from tests.events.test_feed_failures import snapshot


def sample_value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def reset_feed(feed: EventFeedSimulator) -> Iterator[EventFeedSimulator]:
    yield feed
    feed.faults.clear()


async def test_a_connection_reset_mid_body_is_a_provider_failure(
    reset_feed: EventFeedSimulator,
    sync_now: SyncNow,
    fresh_search: Any,
    client: httpx.AsyncClient,
    db: Database,
) -> None:
    _, _, error = await sync_now()
    assert error is None
    before_search = (await fresh_search()).json()
    before = await snapshot(db)
    ingests = {"connection": CONNECTION, "result": "provider_error"}
    outbound = {"connection": CONNECTION, "status": "error"}
    failed_ingests = sample_value("switchboard_feed_ingests_total", **ingests)
    transport_errors = sample_value("switchboard_outbound_requests_total", **outbound)

    # The simulator answers 200 with a Content-Length, then closes the connection mid-body.
    reset_feed.faults.update(down="reset")
    run, result, error = await sync_now()

    assert result is None and error is not None
    assert error == f"{CONNECTION}: RemoteProtocolError reading the provider's answer"
    async with db.read_session() as session:
        stored = await session.get(SyncRun, run.id)
    assert stored is not None and stored.outcome == "failed"
    assert stored.detail is not None and stored.detail["error"] == error
    assert sample_value("switchboard_feed_ingests_total", **ingests) == failed_ingests + 1
    assert sample_value("switchboard_outbound_requests_total", **outbound) == transport_errors + 1
    assert await snapshot(db) == before
    assert (await fresh_search()).json() == before_search
    listed = (await client.get(f"/connections/{CONNECTION}/runs")).json()
    assert "internal error" not in str(listed)


async def test_the_search_index_reports_its_footprint(
    feed: EventFeedSimulator, sync_now: SyncNow, fresh_search: Any, client: httpx.AsyncClient
) -> None:
    feed.configure(mode="generated", base_plans=40, plans=3, zones=2, seed=5)
    _, result, error = await sync_now()
    assert error is None and result is not None
    events = (await fresh_search()).json()["data"]["events"]
    # Offline plans are stored but never searchable, and the index holds only what is.
    assert 0 < len(events) < result.detail["plans"]
    metrics = (await client.get("/metrics")).text
    assert f"switchboard_search_index_plans {float(len(events))}" in metrics
    footprint = sample_value("switchboard_search_index_bytes")
    payload = sum(len(json.dumps(e, separators=(",", ":"))) for e in events)
    assert payload < footprint < payload + 1000 * len(events)
