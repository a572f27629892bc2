"""Schedules: slots fire exactly once across schedulers; missed slots collapse into one run."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update

from switchboard.config import Settings
from switchboard.db import Database, utcnow
from switchboard.jobs import schedules
from switchboard.jobs.schedules import Scheduler, ScheduleSpec
from switchboard.models import Job, Schedule


def test_interval_slots_are_aligned_to_the_epoch() -> None:
    spec = ScheduleSpec("s", "k", every=timedelta(seconds=60))
    t = datetime(2026, 11, 22, 10, 0, 30, tzinfo=UTC)
    assert spec.next_after(t) == datetime(2026, 11, 22, 10, 1, tzinfo=UTC)
    assert spec.latest_at_or_before(t) == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    on_slot = datetime(2026, 11, 22, 10, 1, tzinfo=UTC)
    assert spec.latest_at_or_before(on_slot) == on_slot
    assert spec.next_after(on_slot) == datetime(2026, 11, 22, 10, 2, tzinfo=UTC)


def test_cron_slots() -> None:
    spec = ScheduleSpec("nightly", "k", cron="30 2 * * *")
    t = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert spec.next_after(t) == datetime(2026, 11, 23, 2, 30, tzinfo=UTC)
    assert spec.latest_at_or_before(t) == datetime(2026, 11, 22, 2, 30, tzinfo=UTC)


def test_a_schedule_needs_exactly_one_rule() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ScheduleSpec("s", "k")
    with pytest.raises(ValueError, match="invalid cron"):
        ScheduleSpec("s", "k", cron="every tuesday")


async def fired_slots(db: Database, kind: str) -> list[str]:
    async with db.read_session() as session:
        jobs = (await session.scalars(select(Job).where(Job.kind == kind))).all()
    return [j.payload["slot"] for j in jobs]


async def test_two_schedulers_fire_each_slot_once(db: Database, settings: Settings) -> None:
    spec = ScheduleSpec("fast", "tick", every=timedelta(milliseconds=200), coalesce=False)
    other_db = Database(settings.database_url, schema=settings.database_schema, pool_size=2)
    schedulers = [
        Scheduler(db, [spec], tick=0.01, retention=timedelta(0)),
        Scheduler(other_db, [spec], tick=0.01, retention=timedelta(0)),
    ]
    try:
        for s in schedulers:
            await s.start()
        deadline = asyncio.get_running_loop().time() + 1.5
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for s in schedulers:
            await s.stop()
    finally:
        await other_db.dispose()
    slots = await fired_slots(db, "tick")
    duplicates = [slot for slot, n in Counter(slots).items() if n > 1]
    assert not duplicates
    assert len(slots) >= 4
    for slot in slots:
        assert datetime.fromisoformat(slot).microsecond % 200_000 == 0


async def test_missed_slots_after_downtime_run_once(db: Database) -> None:
    spec = ScheduleSpec("hourly", "report", every=timedelta(minutes=1), payload={"x": 1})
    scheduler = Scheduler(db, [spec], tick=1, retention=timedelta(0))
    await scheduler.register()
    async with db.session() as session:  # as if the hub was down for three hours
        await session.execute(update(Schedule).values(next_run_at=utcnow() - timedelta(hours=3)))
    assert await scheduler.tick() == 1
    assert await scheduler.tick() == 0
    async with db.read_session() as session:
        [job] = (await session.scalars(select(Job))).all()
        row = await session.get(Schedule, "hourly")
    assert row is not None and row.next_run_at > utcnow()
    slot = datetime.fromisoformat(job.payload["slot"])
    assert utcnow() - slot < timedelta(minutes=1)
    assert job.payload["x"] == 1 and job.payload["schedule"] == "hourly"
    assert job.key == "schedule:hourly"


async def test_changed_definition_is_stored(db: Database) -> None:
    first = Scheduler(
        db, [ScheduleSpec("s", "k", every=timedelta(hours=1))], retention=timedelta(0)
    )
    await first.register()
    changed = Scheduler(
        db, [ScheduleSpec("s", "k", every=timedelta(seconds=10))], retention=timedelta(0)
    )
    await changed.register()
    async with db.read_session() as session:
        row = await session.get(Schedule, "s")
    assert row is not None and row.interval_seconds == 10
    assert row.next_run_at - utcnow() <= timedelta(seconds=10)


async def test_an_immediate_schedule_fires_once_at_start_then_on_its_slots(
    db: Database, settings: Settings
) -> None:
    spec = ScheduleSpec("sync:x", "tick", every=timedelta(hours=1), immediate=True)
    other_db = Database(settings.database_url, schema=settings.database_schema, pool_size=2)
    try:
        first = Scheduler(db, [spec], retention=timedelta(0))
        second = Scheduler(other_db, [spec], retention=timedelta(0))
        await first.register()
        assert await first.tick() == 1  # at start, not at the next full hour
        await second.register()  # another process starting later: nothing new to fire
        assert await second.tick() == 0
        assert await first.tick() == 0
    finally:
        await other_db.dispose()
    assert len(await fired_slots(db, "tick")) == 1
    async with db.read_session() as session:
        row = await session.get(Schedule, "sync:x")
    assert row is not None and row.next_run_at > utcnow()
    assert row.next_run_at == spec.next_after(utcnow())  # continues on its aligned slots


async def test_an_immediate_schedule_fires_again_when_its_settings_change(db: Database) -> None:
    def spec(fingerprint: str) -> ScheduleSpec:
        return ScheduleSpec(
            "sync:x",
            "tick",
            every=timedelta(hours=1),
            payload={"settings": fingerprint},
            immediate=True,
            coalesce=False,
        )

    first = Scheduler(db, [spec("a")], retention=timedelta(0))
    await first.register()
    assert await first.tick() == 1
    restarted = Scheduler(db, [spec("a")], retention=timedelta(0))
    await restarted.register()
    assert await restarted.tick() == 0  # same settings: waits for its slot
    changed = Scheduler(db, [spec("b")], retention=timedelta(0))
    await changed.register()
    assert await changed.tick() == 1
    async with db.read_session() as session:
        jobs = (await session.scalars(select(Job).order_by(Job.id))).all()
    assert [j.payload["settings"] for j in jobs] == ["a", "b"]


async def test_an_immediate_schedule_that_never_fired_fires_at_start(db: Database) -> None:
    spec = ScheduleSpec("sync:x", "tick", every=timedelta(hours=1), immediate=True)
    async with db.session() as session:  # stored by a process that stopped before its tick
        session.add(
            Schedule(
                name="sync:x",
                kind="tick",
                payload={},
                interval_seconds=3600.0,
                cron=None,
                next_run_at=utcnow() + timedelta(minutes=30),
                last_slot=None,
                updated_at=utcnow(),
            )
        )
    scheduler = Scheduler(db, [spec], retention=timedelta(0))
    await scheduler.register()
    assert await scheduler.tick() == 1


async def test_a_thousand_schedules_sharing_a_slot_fire_once_each(db: Database) -> None:
    specs = [
        ScheduleSpec(f"sync:c{i:04d}", "tick", every=timedelta(hours=1), payload={"i": i})
        for i in range(1000)
    ]
    scheduler = Scheduler(db, specs, retention=timedelta(0))
    await scheduler.register()
    async with db.session() as session:  # the hour came
        await session.execute(update(Schedule).values(next_run_at=utcnow() - timedelta(seconds=1)))
    assert await scheduler.tick() == 1000
    assert await scheduler.tick() == 0
    async with db.read_session() as session:
        jobs = (await session.scalars(select(Job))).all()
        rows = (await session.scalars(select(Schedule))).all()
    assert Counter(j.key for j in jobs) == {f"schedule:{s.name}": 1 for s in specs}
    assert {j.payload["i"] for j in jobs} == set(range(1000))
    [slot] = {j.payload["slot"] for j in jobs}
    assert {r.last_slot for r in rows} == {datetime.fromisoformat(slot)}
    assert {r.next_run_at for r in rows} == {specs[0].next_after(datetime.fromisoformat(slot))}


async def test_a_slot_another_process_moved_earlier_fires_within_the_recheck(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedules, "RECHECK", timedelta(milliseconds=300))
    spec = ScheduleSpec("sync:x", "tick", every=timedelta(hours=1), payload={"settings": "a"})
    scheduler = Scheduler(db, [spec], retention=timedelta(0))
    await scheduler.register()
    assert await scheduler.tick() == 0  # the next slot is up to an hour away
    other_db = Database(settings.database_url, schema=settings.database_schema, pool_size=2)
    try:  # another process, whose catalog changed first, stores the new definition
        changed = ScheduleSpec(
            "sync:x", "tick", every=timedelta(hours=1), payload={"settings": "b"}, immediate=True
        )
        await Scheduler(other_db, [changed], retention=timedelta(0)).register()
    finally:
        await other_db.dispose()
    deadline = asyncio.get_running_loop().time() + 5
    fired = 0
    while not fired and asyncio.get_running_loop().time() < deadline:
        fired = await scheduler.tick()
        await asyncio.sleep(0.05)
    assert fired == 1


async def test_a_schedule_dropped_while_a_tick_fires_is_skipped(db: Database) -> None:
    """The runtime replaces the specs when the catalog changes, in its own task, so a tick may
    find a due row whose schedule was dropped while it waited for the database (a connection
    paused or deleted): it is not fired, and the tick does not fail (a KeyError there ended
    the scheduler's loop, and no slot fired again until a restart)."""
    a, b = (ScheduleSpec(f"sync:{n}", "tick", every=timedelta(hours=1)) for n in "ab")
    scheduler = Scheduler(db, [a, b], retention=timedelta(0))
    await scheduler.register()
    async with db.session() as session:
        await session.execute(update(Schedule).values(next_run_at=utcnow() - timedelta(seconds=1)))

    def paused_meanwhile(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("SELECT schedules.name") and " IN (" in statement:
            scheduler.specs = {a.name: a}  # what Scheduler.replace does, from the other task

    engine = db.write_engine.sync_engine
    event.listen(engine, "before_cursor_execute", paused_meanwhile)
    try:
        assert await scheduler.tick() == 1
    finally:
        event.remove(engine, "before_cursor_execute", paused_meanwhile)
    async with db.read_session() as session:
        jobs = (await session.scalars(select(Job))).all()
    assert [j.key for j in jobs] == ["schedule:sync:a"]
