"""Contact syncs against the HubSpot and ACME simulators, read back through ``GET /contacts``."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from switchboard.db import Database
from switchboard.models import Contact, ContactCursor
from switchboard.sandbox import AcmeSimulator
from tests.contacts.conftest import SyncNow, all_contacts, hub_view, simulator_view
from tests.support import eventually

LIST = "/crm/v3/objects/contacts"
SEARCH = "/crm/v3/objects/contacts/search"


async def test_full_sync_equals_the_simulator(
    hubspot: HubSpotSimulator, sync_now: SyncNow, client: httpx.AsyncClient, db: Database
) -> None:
    hubspot.store.seed(2500)
    _, result, error = await sync_now()
    assert error is None and result is not None
    assert result.upserted == 2500 and result.detail["mode"] == "full"
    items = await all_contacts(client)
    assert hub_view(items) == simulator_view(hubspot)
    sample = next(i for i in items if i["externalId"] == "42")
    assert sample["name"] == f"{sample['firstName']} {sample['lastName']}"
    assert sample["createdAt"] is not None and sample["updatedAt"] is not None
    # 100 per page with the configured properties, following paging.next.after.
    lists = [
        e for e in hubspot.log.entries() if e["path"] == LIST and "archived=false" in e["query"]
    ]
    assert len(lists) == 25
    assert all(
        "limit=100" in e["query"] and "properties=email%2Cfirstname" in e["query"] for e in lists
    )
    # A second run is incremental and finds nothing new to store.
    _, again, _ = await sync_now()
    assert again is not None and again.detail["mode"] == "incremental" and again.upserted == 0
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 2500


async def test_incremental_sync_picks_up_edits_creations_and_deletions(
    hubspot: HubSpotSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    hubspot.store.seed(300)
    await sync_now()
    hubspot.ui_update(7, {"firstname": "Edited", "phone": ""})
    created = hubspot.ui_create({"email": "fresh@example.com", "firstname": "Fresh"})
    hubspot.ui_delete(9)
    hubspot.log.clear()
    _, result, error = await sync_now()
    assert error is None and result is not None and result.detail["mode"] == "incremental"
    assert result.upserted == 2 and result.deleted == 1
    assert [e["path"] for e in hubspot.log.entries()].count(SEARCH) == 1
    items = await all_contacts(client)
    assert hub_view(items) == simulator_view(hubspot)
    by_id = {i["externalId"]: i for i in items}
    assert by_id["7"]["firstName"] == "Edited" and by_id["7"]["phone"] is None
    assert by_id[created["id"]]["email"] == "fresh@example.com"
    assert "9" not in by_id  # deleted contacts are hidden by default...
    deleted = await all_contacts(client, include_deleted="true")
    tomb = next(i for i in deleted if i["externalId"] == "9")
    assert tomb["deletedAt"] is not None and tomb["email"] is not None  # ...but followable


@pytest.mark.parametrize("archived_interval", ["1h"])
async def test_archived_contacts_are_listed_at_most_every_archived_interval(
    hubspot: HubSpotSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    def archived_listings() -> int:
        return sum(
            1 for e in hubspot.log.entries() if e["path"] == LIST and "archived=true" in e["query"]
        )

    hubspot.store.seed(30)
    hubspot.ui_delete(3)
    await sync_now()
    assert archived_listings() == 1
    hubspot.ui_delete(4)
    _, result, _ = await sync_now()  # within the hour: no listing, the deletion waits
    assert archived_listings() == 1 and result.detail["archived_listed"] is False
    deleted = {i["externalId"] for i in await all_contacts(client, include_deleted="true")} - {
        i["externalId"] for i in await all_contacts(client)
    }
    assert deleted == {"3"}
    _, result, _ = await sync_now(full=True)  # a full sync always lists them
    assert archived_listings() == 2 and result.deleted >= 1
    assert "4" not in {i["externalId"] for i in await all_contacts(client)}


# The property under test is HubSpot's paging (51 searches at 5/s take 10 s), not storage: one
# backend is enough.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_search_pages_by_object_id_past_ten_thousand(
    hubspot: HubSpotSimulator, sync_now: SyncNow, client: httpx.AsyncClient, db: Database
) -> None:
    await sync_now()  # empty portal: the search cursor starts now
    # 10,050 contacts sharing one timestamp: offset paging alone would hit the 10,000 window.
    hubspot.store.seed(10_050, start_ms=int(time.time() * 1000), spacing_ms=0)
    _, result, error = await sync_now()
    assert error is None, error
    assert result is not None and result.upserted == 10_050
    bodies = [e for e in hubspot.log.entries() if e["path"] == SEARCH]
    assert len(bodies) == 51  # 200 per page
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 10_050


async def test_a_killed_sync_resumes_without_gap_or_duplicate(
    hubspot: HubSpotSimulator, sync_now: SyncNow, client: httpx.AsyncClient, db: Database
) -> None:
    hubspot.store.seed(1500)
    hubspot.faults.update(latency_ms=20)  # time to kill it between pages
    task = asyncio.create_task(sync_now())

    async def some_pages_stored() -> bool:
        async with db.read_session() as session:
            return (await session.scalar(select(func.count()).select_from(Contact)) or 0) >= 400

    await eventually(some_pages_stored, timeout=20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.read_session() as session:
        stored = await session.scalar(select(func.count()).select_from(Contact)) or 0
        cursor = await session.get(ContactCursor, ("hubspot", "full"))
    assert 400 <= stored < 1500 and cursor is not None and cursor.value["after"]
    hubspot.faults.clear()
    hubspot.log.clear()
    _, result, error = await sync_now()
    assert error is None and result is not None
    # It resumed where the last committed page ended: the first page was not read again.
    lists = [
        e for e in hubspot.log.entries() if e["path"] == LIST and "archived=false" in e["query"]
    ]
    assert all("after=" in e["query"] for e in lists)
    assert result.upserted == 1500 - stored
    assert hub_view(await all_contacts(client)) == simulator_view(hubspot)


async def test_a_rate_limit_storm_delays_the_sync_but_loses_nothing(
    hubspot: HubSpotSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    hubspot.store.seed(500)
    hubspot.faults.update(storm=True, storm_retry_after=1)
    # The storm passes while the sync waits out the first Retry-After.
    timer = threading.Timer(0.4, hubspot.faults.clear)
    timer.start()
    try:
        _, result, error = await sync_now()
    finally:
        timer.cancel()
    assert error is None, error
    statuses = [e["status"] for e in hubspot.log.entries()]
    assert 429 in statuses
    assert result is not None and result.upserted == 500
    assert hub_view(await all_contacts(client)) == simulator_view(hubspot)


async def test_mapped_crm_sync_maps_fields_and_tombstones_what_disappeared(
    acme: AcmeSimulator, sync_now: SyncNow, client: httpx.AsyncClient
) -> None:
    ids = [
        acme.create(
            {"acme_email": f"m{i}@example.com", "acme_first_name": f"F{i}", "acme_last_name": "L"}
        )["id"]
        for i in range(120)
    ]
    _, result, error = await sync_now("acme")
    assert error is None and result is not None and result.upserted == 120
    acme.update(ids[0], {"acme_first_name": "Changed"})
    acme.delete(ids[1])
    _, result, error = await sync_now("acme")
    assert error is None and result is not None
    assert result.upserted == 1 and result.deleted == 1
    items = {
        i["externalId"]: i
        for i in await all_contacts(client, connection="acme", include_deleted="true")
    }
    assert len(items) == 120
    assert items[ids[0]]["firstName"] == "Changed" and items[ids[0]]["name"] == "Changed L"
    assert items[ids[1]]["deletedAt"] is not None
    assert items[ids[2]]["email"] == "m2@example.com" and items[ids[2]]["deletedAt"] is None


async def test_connection_summary_counts_the_store(
    hubspot: HubSpotSimulator, sync_now: SyncNow, db: Database, config: Any
) -> None:
    from switchboard.syncs import service as syncs

    hubspot.store.seed(30)
    hubspot.ui_delete(3)
    await sync_now()
    async with db.read_session() as session:
        summary = await syncs.connection_summary(session, config, "hubspot")
    assert summary["contacts"] == 29 and summary["deleted_contacts"] == 1
    assert summary["last_success_at"] is not None
