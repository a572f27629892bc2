"""Connections made through the API at run time: their syncs start without a restart, each
one's data stays its own, a rename keeps every public id, a pause stops the schedule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig, Settings
from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from switchboard.connectors.hubspot.simulator.tokens import PRIVATE_APP_TOKEN
from tests.support import API_KEY, Backend, eventually, make_settings

TOKEN = {"type": "token", "token": PRIVATE_APP_TOKEN}


@pytest.fixture
def runtime_enabled() -> bool:
    return True


@pytest.fixture
def hub_config() -> HubConfig:
    return HubConfig()


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    # A breaker opened by a test's outage lets a probe through within the test.
    return make_settings(backend, tmp_path, api_keys=[API_KEY], http_breaker_cooldown=1.0)


@pytest.fixture
def portals(asgi_server: Callable[[Any], str]) -> dict[str, tuple[HubSpotSimulator, str]]:
    """Two HubSpot portals with different contacts."""
    out = {}
    for name, seed, first in (("a", 1, 1000), ("b", 2, 5000)):
        sim = HubSpotSimulator(contacts=12, seed=seed, first_id=first)
        out[name] = (sim, asgi_server(sim.app))
    return out


async def contacts(client: httpx.AsyncClient, connection: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"connection": connection, "limit": 100, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/contacts", params=params)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json().get("next_cursor")
        if not cursor:
            return items


async def make(client: httpx.AsyncClient, name: str, base_url: str, **extra: Any) -> str:
    r = await client.post(
        "/connections",
        json={
            "integration": "hs",
            "name": name,
            "auth": TOKEN,
            "settings": {"base_url": base_url, **extra.pop("settings", {})},
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    connection_id: str = r.json()["id"]
    return connection_id


async def test_new_connections_sync_at_once_and_their_data_stays_apart(
    client: httpx.AsyncClient, portals: dict[str, tuple[HubSpotSimulator, str]]
) -> None:
    assert (
        await client.post("/integrations", json={"name": "hs", "provider": "hubspot"})
    ).status_code == 201
    ids = {p: await make(client, f"cust-{p}", url) for p, (_, url) in portals.items()}

    async def synced() -> bool:
        counts = [len(await contacts(client, ids[p])) for p in portals]
        return counts == [12, 12]

    await eventually(synced, timeout=30)  # no restart: the schedules followed the catalog
    emails = {}
    for p, (sim, _) in portals.items():
        got = await contacts(client, f"cust-{p}")  # by alias: the same as by id
        assert got == await contacts(client, ids[p])
        assert {c["connection"] for c in got} == {ids[p]}
        emails[p] = {c["email"] for c in got}
        assert emails[p] == {c.properties["email"] for c in sim.store.active()}
    assert not emails["a"] & emails["b"]
    # A contact is found only under its own connection's id.
    one = (await contacts(client, ids["a"]))[0]
    r = await client.get(f"/contacts/{one['id']}")
    assert r.json()["connection"] == ids["a"]
    listed_b = {c["id"] for c in await contacts(client, ids["b"])}
    assert one["id"] not in listed_b


async def test_a_rename_keeps_every_public_id(
    client: httpx.AsyncClient, portals: dict[str, tuple[HubSpotSimulator, str]]
) -> None:
    await client.post("/integrations", json={"name": "hs", "provider": "hubspot"})
    cid = await make(client, "old-name", portals["a"][1])

    async def synced() -> bool:
        return len(await contacts(client, cid)) == 12

    await eventually(synced, timeout=30)
    before = sorted(c["id"] for c in await contacts(client, "old-name"))
    r = await client.patch("/connections/old-name", json={"name": "new-name"})
    assert r.status_code == 200
    after = sorted(c["id"] for c in await contacts(client, "new-name"))
    assert after == before
    assert (await client.get("/contacts", params={"connection": "old-name"})).status_code == 404
    runs = (await client.get("/connections/new-name/runs")).json()["items"]
    assert runs and all(run["connection"] == cid for run in runs)


async def test_pausing_stops_the_schedule_and_resuming_restarts_it(
    client: httpx.AsyncClient, app: Any, portals: dict[str, tuple[HubSpotSimulator, str]]
) -> None:
    await client.post("/integrations", json={"name": "hs", "provider": "hubspot"})
    cid = await make(client, "paused", portals["a"][1], settings={"sync_interval": "1s"})
    scheduler = app.state.runtime.scheduler

    async def scheduled() -> bool:
        return f"sync:{cid}" in scheduler.specs

    async def runs() -> int:
        return len(
            (await client.get(f"/connections/{cid}/runs", params={"limit": 200})).json()["items"]
        )

    await eventually(scheduled)
    await eventually(lambda: _at_least(runs, 2), timeout=20)
    await client.patch(f"/connections/{cid}", json={"status": "paused"})

    async def unscheduled() -> bool:
        return f"sync:{cid}" not in scheduler.specs

    await eventually(unscheduled)
    await eventually(_no_run_running(client, cid))
    count = await runs()
    for _ in range(3):  # three more slots pass: none of them fires
        await scheduler.tick()
        await _slot_passes()
    assert await runs() == count
    await client.patch(f"/connections/{cid}", json={"status": "ok"})
    await eventually(scheduled)
    await eventually(lambda: _at_least(runs, count + 1), timeout=20)


async def _at_least(count: Callable[[], Any], n: int) -> bool:
    return bool(await count() >= n)


def _no_run_running(client: httpx.AsyncClient, cid: str) -> Callable[[], Any]:
    async def check() -> bool:
        items = (await client.get(f"/connections/{cid}/runs")).json()["items"]
        return all(run["finished_at"] is not None for run in items)

    return check


async def _slot_passes() -> None:
    import asyncio

    await asyncio.sleep(1.05)  # a 1 s schedule's next slot (what "nothing fired" is checked over)


async def test_a_user_propagates_to_the_crm_connection_it_names(
    client: httpx.AsyncClient, portals: dict[str, tuple[HubSpotSimulator, str]]
) -> None:
    await client.post("/integrations", json={"name": "hs", "provider": "hubspot"})
    await make(client, "crm-a", portals["a"][1])
    b = await make(client, "crm-b", portals["b"][1])
    r = await client.patch(
        "/users/u-1", json={"email": "moved@example.com", "crmConnection": "crm-b"}
    )
    assert r.status_code == 200 and r.json()["crmConnection"] == b

    async def propagated() -> bool:
        user = (await client.get("/users/u-1")).json()
        return bool(user["sync"]["state"] == "synced")

    await eventually(propagated, timeout=30)
    in_b = {c.properties.get("email") for c in portals["b"][0].store.active()}
    in_a = {c.properties.get("email") for c in portals["a"][0].store.active()}
    assert "moved@example.com" in in_b and "moved@example.com" not in in_a


async def test_a_paused_crm_holds_its_users_changes_until_resumed(
    client: httpx.AsyncClient, portals: dict[str, tuple[HubSpotSimulator, str]]
) -> None:
    await client.post("/integrations", json={"name": "hs", "provider": "hubspot"})
    await make(client, "crm-p", portals["b"][1])
    assert (await client.patch("/connections/crm-p", json={"status": "paused"})).status_code == 200
    r = await client.post("/contacts", json={"connection": "crm-p", "email": "x@example.com"})
    assert r.status_code == 409 and "paused" in r.json()["detail"]
    r = await client.patch(
        "/users/u-2", json={"email": "held@example.com", "crmConnection": "crm-p"}
    )
    assert r.status_code == 200

    async def deferred() -> bool:
        jobs = (await client.get("/admin/jobs", params={"kind": "users.propagate"})).json()
        return any("paused" in (j["last_error"] or "") for j in jobs["items"])

    await eventually(deferred, timeout=20)
    assert (await client.get("/users/u-2")).json()["sync"]["state"] == "pending"
    assert "held@example.com" not in {
        c.properties.get("email") for c in portals["b"][0].store.active()
    }
    # Resumed: the waiting job goes at once, not at its next look a minute later.
    assert (await client.patch("/connections/crm-p", json={"status": "ok"})).status_code == 200

    async def synced() -> bool:
        return bool((await client.get("/users/u-2")).json()["sync"]["state"] == "synced")

    await eventually(synced, timeout=20)  # PAUSED_RETRY is 60 s
    assert "held@example.com" in {c.properties.get("email") for c in portals["b"][0].store.active()}


async def test_three_failed_syncs_in_a_row_set_status_error_until_one_succeeds(
    client: httpx.AsyncClient, portals: dict[str, tuple[HubSpotSimulator, str]]
) -> None:
    await client.post("/integrations", json={"name": "hs", "provider": "hubspot"})
    sim = portals["a"][0]
    cid = await make(client, "flaky", portals["a"][1])

    async def finished_runs() -> list[dict[str, Any]]:
        items = (await client.get(f"/connections/{cid}/runs", params={"limit": 200})).json()
        return [run for run in items["items"] if run["finished_at"] is not None]

    async def sync_once() -> dict[str, Any]:
        before = len(await finished_runs())
        assert (await client.post(f"/connections/{cid}/sync")).status_code == 202
        await eventually(lambda: _at_least(lambda: _count(finished_runs), before + 1), timeout=20)
        return (await finished_runs())[0]

    async def status_changes() -> list[tuple[str, str | None]]:
        """The status changes, as the events written with them say (in their transaction)."""
        params = {"type": "connection.updated", "connection": cid}
        events = (await client.get("/changes", params=params)).json()["items"]
        assert all(e["data"]["changed"] == ["status"] for e in events)
        return [
            (e["data"]["connection"]["status"], e["data"]["connection"]["status_reason"])
            for e in events
        ]

    def status_is(wanted: str) -> Callable[[], Any]:
        async def check() -> bool:
            body = (await client.get(f"/connections/{cid}")).json()
            return bool(body["status"] == wanted)

        return check

    await eventually(lambda: _at_least(lambda: _count(finished_runs), 1), timeout=20)
    sim.faults.update(error_rate=1.0, error_status=500)
    for n in range(3):
        run = await sync_once()
        assert run["outcome"] == "failed", run
        if n < 2:
            assert await status_changes() == []  # one or two failures are not a status
    [(state, reason)] = await status_changes()
    assert state == "error" and reason is not None and "3 syncs failed in a row" in reason
    await eventually(status_is("error"))  # every process's catalog, within its poll
    # A status change is not a settings change: the client, and its open breaker, stay (a new
    # client's would be closed; past its 1 s cooldown here, it may be half open).
    detail = (await client.get(f"/connections/{cid}")).json()
    assert detail["outbound"]["breaker"] in ("open", "half_open"), detail
    listed = (await client.get("/connections", params={"status": "error"})).json()["items"]
    assert [c["id"] for c in listed] == [cid]
    sim.faults.clear()

    async def a_sync_succeeds() -> bool:  # once the open breaker's cooldown (1 s) has passed
        return bool((await sync_once())["outcome"] == "succeeded")

    await eventually(a_sync_succeeds, timeout=20)
    assert (await status_changes())[1:] == [("ok", None)]
    await eventually(status_is("ok"))


async def _count(items: Callable[[], Any]) -> int:
    return len(await items())
