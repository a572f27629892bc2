"""The persons sync against the simulator, on every database backend: pages and their cursor,
deletions found by the full pass, resumption after a failure, idempotence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from switchboard.config import Config, Settings
from switchboard.connectors.pipedrive.settings import PipedriveConnection
from switchboard.connectors.pipedrive.simulator import PipedriveSimulator
from switchboard.connectors.pipedrive.sync import STREAM, sync_persons
from switchboard.contacts import service
from switchboard.db import Database
from switchboard.errors import TransientError
from switchboard.http import Outbound
from switchboard.http.testing import FakeClock
from switchboard.syncs.registry import SyncContext, SyncResult
from tests.connectors.pipedrive.conftest import NAME, connection, hub_config


@pytest.fixture
def conn(sim_url: str) -> PipedriveConnection:
    return connection(sim_url, page_size=3)


@pytest.fixture
def config(settings: Settings, conn: PipedriveConnection) -> Config:
    return hub_config(settings, conn)


@pytest.fixture
async def hub_outbound(config: Config, db: Database, clock: FakeClock) -> AsyncIterator[Outbound]:
    out = Outbound(config, db, clock=clock)
    yield out
    await out.aclose()


Run = Any


@pytest.fixture
def run(config: Config, db: Database, hub_outbound: Outbound, conn: PipedriveConnection) -> Run:
    async def go(*, full: bool = False, progress: Any = None) -> SyncResult:
        ctx = SyncContext(NAME, conn, config, db, hub_outbound, full=full)  # type: ignore[arg-type]
        if progress is not None:
            ctx.progress = progress
        return await sync_persons(ctx)

    return go


async def stored(db: Database, external_id: Any) -> Any:
    async with db.read_session() as session:
        return await service.by_external(session, NAME, str(external_id))


async def test_a_run_stores_every_page_and_a_second_changes_nothing(
    run: Run, sim: PipedriveSimulator, db: Database
) -> None:
    sim.store.seed(7)
    first = await run()
    assert (first.pages, first.upserted, first.deleted) == (3, 7, 0)
    row = await stored(db, 1)
    person = sim.store.get(1)
    assert row.email == person["email"][0]["value"] and row.company == person["org_name"]
    assert row.updated_at.replace(tzinfo=UTC) == datetime.strptime(
        person["update_time"], "%Y-%m-%d %H:%M:%S"
    ).replace(tzinfo=UTC)
    async with db.read_session() as session:
        assert STREAM not in await service.cursors(session, NAME)
    again = await run()
    assert (again.upserted, again.deleted) == (0, 0)


async def test_changes_and_deletions_show_on_the_next_run(
    run: Run, sim: PipedriveSimulator, db: Database, clock: FakeClock
) -> None:
    sim.store.seed(5)
    await run()
    clock.advance(60)
    sim.store.update(2, {"name": "Renamed Person"})
    sim.store.delete(3)  # Pipedrive keeps it, inactive
    del sim.store.persons[4]  # gone for good (past Pipedrive's retention)
    result = await run()
    assert (result.upserted, result.deleted) == (1, 2)
    assert (await stored(db, 2)).first_name == "Renamed"
    deleted = await stored(db, 3)
    assert deleted.deleted_at.replace(tzinfo=UTC) == datetime.strptime(
        sim.store.get(3)["update_time"], "%Y-%m-%d %H:%M:%S"
    ).replace(tzinfo=UTC)
    assert (await stored(db, 4)).deleted_at is not None
    assert (await stored(db, 5)).deleted_at is None
    async with db.read_session() as session:
        assert await service.counts(session, NAME) == {"contacts": 3, "deleted_contacts": 2}


async def test_a_failed_run_resumes_after_its_last_stored_page(
    run: Run, sim: PipedriveSimulator, db: Database
) -> None:
    sim.store.seed(7)

    def fail_after_first_page(message: str) -> None:
        sim.faults.update(down="503")

    with pytest.raises(TransientError):
        await run(progress=fail_after_first_page)
    async with db.read_session() as session:
        cursor = (await service.cursors(session, NAME))[STREAM]
        assert cursor == {"start": 3, "seen": ["1", "2", "3"]}
        assert (await service.counts(session, NAME))["contacts"] == 3
    sim.faults.clear()
    sim.log.clear()
    result = await run()
    lists = [e["query"] for e in sim.log.entries() if e["path"] == "/v1/persons"]
    assert lists[0].startswith("start=3&")  # resumed, not restarted
    assert (result.pages, result.upserted, result.deleted) == (2, 4, 0)
    full = await run(full=True)
    assert full.pages == 3 and full.upserted == 0
