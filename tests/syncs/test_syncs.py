"""Sync runs through the API and the job queue: queueing, listing, one run at a time."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from switchboard.config import Config, HubConfig
from switchboard.connectors.xml_feed.simulator import EventFeedSimulator
from switchboard.db import Database
from switchboard.errors import Conflict
from switchboard.models import Job, SyncRun
from switchboard.syncs import service
from tests.events.conftest import SyncNow
from tests.support import eventually


@pytest.fixture
def hub_config(feed_url: str) -> HubConfig:
    return HubConfig.model_validate(
        {
            "connections": {
                "events": {"kind": "xml_feed", "url": feed_url, "interval": "1h"},
                "todo": {"kind": "todo_webhooks"},
            }
        }
    )


async def runs(db: Database, connection: str = "events") -> list[SyncRun]:
    async with db.read_session() as session:
        return await service.list_runs(session, connection, limit=100)


async def test_post_sync_queues_one_coalesced_job(client: httpx.AsyncClient, db: Database) -> None:
    first = await client.post("/connections/events/sync")
    assert first.status_code == 202
    body = first.json()
    assert body["connection"] == "events" and body["kind"] == "xml_feed" and not body["full"]
    second = await client.post("/connections/events/sync", params={"full": "true"})
    assert second.status_code == 202
    # Still one pending job for the connection; the newest request's payload wins.
    assert second.json()["job_id"] == body["job_id"]
    async with db.read_session() as session:
        jobs = (await session.scalars(select(Job).where(Job.key == "sync:events"))).all()
    assert [(j.kind, j.payload, j.state) for j in jobs] == [
        ("syncs.run", {"connection": "events", "full": True}, "pending")
    ]


async def test_a_queued_full_sync_stays_full_when_a_plain_one_is_asked_for(
    client: httpx.AsyncClient, db: Database
) -> None:
    """A full sync waiting its turn (a run of the connection is still going) must not become a
    plain one because the schedule's next slot, or another caller, asked for a sync meanwhile:
    the caller who asked for the full one would never get it."""
    full = await client.post("/connections/events/sync", params={"full": "true"})
    plain = await client.post("/connections/events/sync")  # as the schedule's tick does
    assert plain.json()["job_id"] == full.json()["job_id"]
    async with db.read_session() as session:
        jobs = (await session.scalars(select(Job).where(Job.key == "sync:events"))).all()
    assert [(j.payload, j.state) for j in jobs] == [
        ({"connection": "events", "full": True}, "pending")
    ]


async def test_unknown_connection_and_kinds_without_sync(client: httpx.AsyncClient) -> None:
    assert (await client.post("/connections/nope/sync")).status_code == 404
    assert (await client.get("/connections/nope/runs")).status_code == 404
    refused = await client.post("/connections/todo/sync")
    assert refused.status_code == 400
    assert "nothing to sync" in refused.json()["detail"]


async def test_sync_requires_the_api_key(client: httpx.AsyncClient) -> None:
    response = await client.post("/connections/events/sync", headers={"X-API-Key": "nope"})
    assert response.status_code == 401


async def test_runs_are_listed_newest_first_page_by_page(
    feed: EventFeedSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    for _ in range(5):
        await sync_now()
    page = (await client.get("/connections/events/runs", params={"limit": 2})).json()
    ids = [r["id"] for r in page["items"]]
    assert len(ids) == 2 and ids[0] > ids[1]
    seen = list(ids)
    while page["next_before"] is not None:
        page = (
            await client.get(
                "/connections/events/runs", params={"limit": 2, "before": page["next_before"]}
            )
        ).json()
        seen += [r["id"] for r in page["items"]]
    assert seen == sorted(seen, reverse=True) and len(seen) == 5
    assert {
        r["outcome"] for r in (await client.get("/connections/events/runs")).json()["items"]
    } == {"succeeded"}


async def test_a_run_refuses_to_start_while_another_is_running(
    feed: EventFeedSimulator, sync_now: SyncNow, db: Database, config: Config, outbound: Any
) -> None:
    async with db.session() as session:
        running = await service.begin_run(session, "events", "events")
    with pytest.raises(Conflict, match="still running"):
        # Directly: ``sync_now`` would wait for the running one to end.
        await service.run_now(config, db, outbound, "events")
    async with db.session() as session:
        await service.finish_run(session, running.id, service.SyncResult())
    _, _, error = await sync_now()
    assert error is None


async def test_a_retried_job_closes_the_run_its_dead_attempt_left(db: Database) -> None:
    async with db.session() as session:
        await service.begin_run(session, "events", "events", job_id=41)
    async with db.session() as session:
        await service.begin_run(session, "events", "events", job_id=41)
    listed = await runs(db)
    assert [(r.outcome, r.detail) for r in listed] == [
        ("running", None),
        ("failed", {"error": "abandoned"}),
    ]


async def test_connection_summary(
    feed: EventFeedSimulator, sync_now: SyncNow, config: Config, db: Database
) -> None:
    async with db.read_session() as session:
        assert (await service.connection_summary(session, config, "todo")) == {}
        empty = await service.connection_summary(session, config, "events")
    assert empty["last_run"] is None and empty["plans_stored"] == 0
    await sync_now()
    await sync_now()
    feed.configure(unavailable_rate=1.0)
    await sync_now()
    async with db.read_session() as session:
        summary = await service.connection_summary(session, config, "events")
    assert summary["last_run"]["outcome"] == "failed"
    assert summary["failed_runs_since_success"] == 1
    assert summary["last_success_at"] is not None
    assert summary["plans_stored"] == 4  # 291, 322/1642, 322/1643, 1591/1642 (444 invalid)
    assert summary["plans_searchable"] == 4
    assert summary["plans_in_feed"] == 2  # 322 left with response 2
    assert summary["errors"] == 1


class TestInTheBackground:
    """With the embedded runtime: jobs run the syncs, and schedules poll."""

    @pytest.fixture
    def runtime_enabled(self) -> bool:
        return True

    @pytest.fixture
    def hub_config(self, feed_url: str) -> HubConfig:
        return HubConfig.model_validate(
            {"connections": {"events": {"kind": "xml_feed", "url": feed_url, "interval": "0.3s"}}}
        )

    async def test_the_schedule_polls_and_runs_never_overlap(
        self, feed: EventFeedSimulator, client: httpx.AsyncClient, db: Database
    ) -> None:
        feed.configure(latency_ms=(50, 100))
        for _ in range(3):
            assert (await client.post("/connections/events/sync")).status_code == 202

        async def several_runs() -> bool:
            return sum(r.outcome == "succeeded" for r in await runs(db)) >= 4

        await eventually(several_runs, timeout=15)
        finished = sorted(
            (r for r in await runs(db) if r.finished_at is not None), key=lambda r: r.id
        )
        for earlier, later in itertools.pairwise(finished):
            assert earlier.finished_at is not None
            assert later.started_at >= earlier.finished_at
        async with db.read_session() as session:
            fired = await session.scalar(
                select(func.count()).select_from(Job).where(Job.kind == "syncs.tick")
            )
        assert fired is not None and fired >= 1
        response = await client.get("/search")
        assert len(response.json()["data"]["events"]) >= 3

    async def test_a_provider_outage_is_a_failed_run_not_a_dead_job(
        self, feed: EventFeedSimulator, client: httpx.AsyncClient, db: Database
    ) -> None:
        feed.configure(unavailable_rate=1.0)
        await client.post("/connections/events/sync")

        async def failed() -> bool:
            return any(r.outcome == "failed" for r in await runs(db))

        await eventually(failed, timeout=10)
        async with db.read_session() as session:
            dead = await session.scalar(
                select(func.count()).select_from(Job).where(Job.state == "dead")
            )
        assert dead == 0
        run: Any = next(r for r in await runs(db) if r.outcome == "failed")
        assert "503" in run.detail["error"]
