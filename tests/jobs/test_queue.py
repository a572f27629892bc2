"""Job semantics with an in-process worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from switchboard.config import Config
from switchboard.db import Database, utcnow
from switchboard.errors import TerminalError, TransientError
from switchboard.jobs import RetryLater, enqueue, queue
from switchboard.jobs.registry import JobContext
from switchboard.models import Job
from tests.jobs.conftest import Recorder
from tests.support import eventually


async def job(db: Database, job_id: int) -> Job:
    async with db.read_session() as session:
        found = await session.get(Job, job_id)
        assert found is not None
        return found


async def state_is(db: Database, job_id: int, state: str) -> bool:
    return (await job(db, job_id)).state == state


async def test_job_exists_only_if_the_transaction_commits(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await enqueue(session, "k", {"a": 1})
            raise RuntimeError("the state change failed")
    async with db.session() as session:
        kept = await enqueue(session, "k", {"a": 2})
    async with db.read_session() as session:
        rows = (await session.scalars(select(Job))).all()
    assert [(r.id, r.payload, r.state) for r in rows] == [(kept, {"a": 2}, "pending")]


async def test_runs_a_job_once(db: Database, rec: Recorder, start_worker: Any) -> None:
    @rec.registry.handler("t")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))

    await start_worker()
    async with db.session() as session:
        job_id = await enqueue(session, "t", {"x": 1})
    await eventually(lambda: state_is(db, job_id, "succeeded"))
    assert rec.runs == [(job_id, 1, {"x": 1})]
    done = await job(db, job_id)
    assert done.finished_at is not None and done.lease_until is None


async def test_coalescing_keeps_only_the_newest_payload(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    @rec.registry.handler("sync")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))

    async with db.session() as session:
        ids = {await enqueue(session, "sync", {"v": v}, key="u1", coalesce=True) for v in range(5)}
    async with db.session() as session:  # and across transactions
        ids.add(await enqueue(session, "sync", {"v": 5}, key="u1", coalesce=True))
        other = await enqueue(session, "sync", {"v": 0}, key="u2", coalesce=True)
    assert len(ids) == 1
    await start_worker()
    await eventually(lambda: state_is(db, other, "succeeded"))
    await eventually(lambda: state_is(db, ids.pop(), "succeeded"))
    assert sorted(p["v"] for _, _, p in rec.runs) == [0, 5]


async def test_coalescing_does_not_disturb_a_running_job(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    release = asyncio.Event()

    @rec.registry.handler("sync")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))
        if ctx.payload["v"] == 1:
            await release.wait()

    await start_worker(concurrency=4)
    async with db.session() as session:
        first = await enqueue(session, "sync", {"v": 1}, key="u", coalesce=True)
    await eventually(lambda: state_is(db, first, "running"))
    async with db.session() as session:
        second = await enqueue(session, "sync", {"v": 2}, key="u", coalesce=True)
        third = await enqueue(session, "sync", {"v": 3}, key="u", coalesce=True)
    assert second == third != first
    assert (await job(db, first)).payload == {"v": 1}
    # The key is busy: the new job waits for the running one.
    await asyncio.sleep(0.1)
    assert await state_is(db, second, "pending")
    release.set()
    await eventually(lambda: state_is(db, second, "succeeded"))
    assert [p["v"] for _, _, p in rec.runs] == [1, 3]


async def test_jobs_sharing_a_key_run_one_at_a_time_in_order(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    active: dict[str, int] = {}
    overlaps: list[str] = []

    @rec.registry.handler("ordered")
    async def run(ctx: JobContext) -> None:
        assert ctx.key is not None
        active[ctx.key] = active.get(ctx.key, 0) + 1
        if active[ctx.key] > 1:
            overlaps.append(ctx.key)
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))
        await asyncio.sleep(0.002 * (ctx.payload["seq"] % 3))
        active[ctx.key] -= 1

    async with db.session() as session:
        ids = [
            await enqueue(session, "ordered", {"seq": i, "k": f"k{i % 3}"}, key=f"k{i % 3}")
            for i in range(45)
        ]
    await start_worker(concurrency=8)
    await eventually(lambda: state_is(db, ids[-1], "succeeded"), timeout=30)
    for i in ids:
        await eventually(lambda i=i: state_is(db, i, "succeeded"))
    assert not overlaps
    for k in ("k0", "k1", "k2"):
        seqs = [p["seq"] for _, _, p in rec.runs if p["k"] == k]
        assert seqs == sorted(seqs) and len(seqs) == 15


async def test_retry_later_waits_the_given_time_and_keeps_attempts(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    @rec.registry.handler("polite")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))
        if ctx.attempt < 3:
            raise RetryLater(0.4, "provider said Retry-After: 0.4")

    await start_worker()
    async with db.session() as session:
        job_id = await enqueue(session, "polite", {}, max_attempts=1)

    async def deferred_once() -> bool:
        j = await job(db, job_id)
        return j.state == "pending" and j.attempts == 1

    await eventually(deferred_once)
    after_first = await job(db, job_id)
    assert after_first.attempts == 1
    assert after_first.last_error == "provider said Retry-After: 0.4"
    wait = (after_first.run_at - after_first.updated_at).total_seconds()
    assert 0.39 <= wait <= 0.45
    await eventually(lambda: state_is(db, job_id, "succeeded"))
    done = await job(db, job_id)
    # Two deferrals did not use up the single attempt allowed.
    assert done.attempts == 3 and done.deferrals == 2
    assert done.started_at is not None and done.started_at >= after_first.run_at


async def test_terminal_error_goes_dead_at_once(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    @rec.registry.handler("doomed")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))
        raise TerminalError("HubSpot said 400: Property values were not valid")

    await start_worker()
    async with db.session() as session:
        job_id = await enqueue(session, "doomed", {})
    await eventually(lambda: state_is(db, job_id, "dead"))
    dead = await job(db, job_id)
    assert dead.attempts == 1 and len(rec.runs) == 1
    assert "Property values were not valid" in (dead.last_error or "")
    assert "terminal" in (dead.last_error or "")


async def test_failures_back_off_until_exhausted_then_dead(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    @rec.registry.handler("flaky")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))
        if ctx.payload.get("transient"):
            raise TransientError("503 from provider")
        raise ValueError("bug")

    await start_worker()
    async with db.session() as session:
        a = await enqueue(session, "flaky", {}, max_attempts=3)
        b = await enqueue(session, "flaky", {"transient": True}, max_attempts=2)
    await eventually(lambda: state_is(db, a, "dead"))
    await eventually(lambda: state_is(db, b, "dead"))
    assert [att for i, att, _ in rec.runs if i == a] == [1, 2, 3]
    assert [att for i, att, _ in rec.runs if i == b] == [1, 2]
    assert "ValueError: bug" in ((await job(db, a)).last_error or "")


async def test_deadline_bounds_retries(db: Database, rec: Recorder, start_worker: Any) -> None:
    @rec.registry.handler("late")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))
        raise RetryLater(0.05)

    await start_worker()
    async with db.session() as session:
        job_id = await enqueue(session, "late", {}, deadline=utcnow() + timedelta(seconds=0.3))
    await eventually(lambda: state_is(db, job_id, "dead"))
    dead = await job(db, job_id)
    assert "past deadline" in (dead.last_error or "")
    assert dead.attempts >= 2


async def test_expired_lease_is_claimed_again(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    @rec.registry.handler("t")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))

    async with db.session() as session:
        job_id = await enqueue(session, "t", {})
        # A worker that claimed it and died: running, lease lapsed.
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state="running",
                attempts=1,
                worker="dead-worker",
                lease_until=utcnow() - timedelta(seconds=1),
            )
        )
    await start_worker()
    await eventually(lambda: state_is(db, job_id, "succeeded"))
    assert rec.runs == [(job_id, 2, {})]


async def test_a_worker_that_lost_its_lease_cannot_record_an_outcome(db: Database) -> None:
    async with db.session() as session:
        job_id = await enqueue(session, "t", {})
    async with db.session() as session:
        [claimed] = await queue.claim(
            session, worker="w1", kinds=["t"], limit=5, lease=timedelta(seconds=-1)
        )
    async with db.session() as session:
        assert await queue.reap(session) == 1
    async with db.session() as session:
        [again] = await queue.claim(
            session, worker="w2", kinds=["t"], limit=5, lease=timedelta(seconds=30)
        )
    assert again.id == claimed.id == job_id and again.attempts == 2
    async with db.session() as session:
        assert not await queue.succeed(session, job_id, worker="w1", attempt=1)
        assert await queue.succeed(session, job_id, worker="w2", attempt=2)


async def test_graceful_stop_hands_back_unfinished_jobs(
    db: Database, config: Config, rec: Recorder, start_worker: Any
) -> None:
    started = asyncio.Event()

    @rec.registry.handler("slow")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))
        if ctx.attempt == 1:
            started.set()
            await asyncio.sleep(60)

    first = await start_worker()
    async with db.session() as session:
        job_id = await enqueue(session, "slow", {})
    await asyncio.wait_for(started.wait(), 10)
    first.grace = 0.05
    await first.stop()
    # Handed back at once, not left for a lease to lapse, and the cut attempt is not a failure.
    handed_back = await job(db, job_id)
    assert handed_back.state == "pending" and handed_back.worker is None
    assert handed_back.run_at <= utcnow() and handed_back.attempts - handed_back.deferrals == 0
    assert (
        handed_back.last_error is not None and "handed back at shutdown" in handed_back.last_error
    )
    await start_worker()
    await eventually(lambda: state_is(db, job_id, "succeeded"))
    assert [att for _, att, _ in rec.runs] == [1, 2]


async def test_shutdown_does_not_wait_for_a_handler_that_ignores_cancellation(
    db: Database, config: Config, rec: Recorder, start_worker: Any
) -> None:
    started = asyncio.Event()
    done = asyncio.Event()

    @rec.registry.handler("stubborn")
    async def run(ctx: JobContext) -> None:
        started.set()
        # A handler stuck in work that cannot be interrupted (a thread, a shielded call).
        await asyncio.shield(done.wait())

    first = await start_worker()
    async with db.session() as session:
        job_id = await enqueue(session, "stubborn", {})
    await asyncio.wait_for(started.wait(), 10)
    first.grace = 0.05
    began = asyncio.get_running_loop().time()
    await first.stop()
    assert asyncio.get_running_loop().time() - began < 0.05 + 2.0 + 1.0
    handed_back = await job(db, job_id)
    assert handed_back.state == "pending" and handed_back.attempts - handed_back.deferrals == 0
    done.set()


async def test_a_worker_with_every_slot_busy_parks_instead_of_spinning(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    """Every commit that enqueues wakes the local workers. With no free slot there is nothing
    to claim: the loop must go back to waiting (found by bench/users.py: a saturated embedded
    worker spun on its wake event and took a third of the API process's CPU)."""
    started, release = asyncio.Event(), asyncio.Event()

    @rec.registry.handler("busy")
    async def run(ctx: JobContext) -> None:
        started.set()
        await release.wait()

    worker = await start_worker(concurrency=1)
    async with db.session() as session:
        await enqueue(session, "busy", {})
    await asyncio.wait_for(started.wait(), 10)
    for _ in range(5):
        async with db.session() as session:
            await enqueue(session, "busy", {})  # wakes the worker after the commit
        for _ in range(10):  # a few loop iterations: enough for the claim loop to run
            await asyncio.sleep(0)
        assert not worker._wake.is_set(), "the claim loop is spinning on its wake event"
    release.set()


async def test_a_capped_kind_leaves_the_other_slots_to_other_kinds(
    db: Database, config: Config, rec: Recorder, start_worker: Any
) -> None:
    """Jobs waiting on a rate-limited provider hold their slots; capped, they cannot take every
    slot of the worker and hold up unrelated kinds behind a long queue."""
    release = asyncio.Event()
    running = 0
    most = 0

    @rec.registry.handler("crm", concurrency=lambda cfg: 2 if cfg is config else 99)
    async def crm(ctx: JobContext) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await release.wait()  # "waiting for the provider's budget"
        finally:
            running -= 1

    @rec.registry.handler("report")
    async def report(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))

    async def two_running() -> bool:
        return running == 2

    async with db.session() as session:
        crm_jobs = [await enqueue(session, "crm", {"n": i}) for i in range(10)]
    await start_worker(concurrency=4)
    await eventually(two_running)
    async with db.session() as session:
        report_id = await enqueue(session, "report", {})
    await eventually(lambda: state_is(db, report_id, "succeeded"))
    assert running == 2
    release.set()
    for job_id in crm_jobs:
        await eventually(lambda job_id=job_id: state_is(db, job_id, "succeeded"))
    assert most == 2


async def test_outcome_writes_commit_with_the_jobs_outcome(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    def note(job_id: int) -> Any:
        async def write(session: Any, state: str | None) -> None:
            await session.execute(
                update(Job).where(Job.id == job_id).values(payload={"seen": state})
            )

        return write

    @rec.registry.handler("noted")
    async def run(ctx: JobContext) -> None:
        ctx.on_outcome(note(ctx.id))
        if ctx.payload.get("fail"):
            raise TerminalError("no")

    async with db.session() as session:
        ok = await enqueue(session, "noted", {})
        bad = await enqueue(session, "noted", {"fail": True})
    await start_worker()
    await eventually(lambda: state_is(db, ok, "succeeded"))
    await eventually(lambda: state_is(db, bad, "dead"))
    assert (await job(db, ok)).payload == {"seen": "succeeded"}
    assert (await job(db, bad)).payload == {"seen": "dead"}


async def test_a_failing_outcome_write_loses_only_its_own_jobs_outcome(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    gate = asyncio.Event()

    async def broken(session: Any, state: str | None) -> None:
        raise RuntimeError("the domain write failed")

    @rec.registry.handler("pair")
    async def run(ctx: JobContext) -> None:
        await gate.wait()  # both finish together: their successes share a batch
        if ctx.payload["broken"]:
            ctx.on_outcome(broken)

    async with db.session() as session:
        good = await enqueue(session, "pair", {"broken": False})
        bad = await enqueue(session, "pair", {"broken": True})
    await start_worker()
    await eventually(lambda: state_is(db, bad, "running"))
    await eventually(lambda: state_is(db, good, "running"))
    gate.set()
    await eventually(lambda: state_is(db, good, "succeeded"))
    assert (await job(db, bad)).state == "running"  # unrecorded: runs again after its lease


async def test_unregistered_kinds_are_left_alone(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    @rec.registry.handler("known")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))

    async with db.session() as session:
        unknown = await enqueue(session, "from-a-newer-version", {})
        known = await enqueue(session, "known", {})
    await start_worker()
    await eventually(lambda: state_is(db, known, "succeeded"))
    assert await state_is(db, unknown, "pending")


async def test_replay_of_a_dead_job(db: Database, rec: Recorder, start_worker: Any) -> None:
    fixed = asyncio.Event()

    @rec.registry.handler("fragile")
    async def run(ctx: JobContext) -> None:
        rec.runs.append((ctx.id, ctx.attempt, ctx.payload))
        if not fixed.is_set():
            raise TerminalError("bad credentials")

    await start_worker()
    async with db.session() as session:
        job_id = await enqueue(session, "fragile", {})
    await eventually(lambda: state_is(db, job_id, "dead"))
    fixed.set()
    async with db.session() as session:
        with pytest.raises(ValueError, match="only dead jobs"):
            await queue.replay(session, (await enqueue(session, "other", {})))
    async with db.session() as session:
        replayed = await queue.replay(session, job_id)
        assert replayed is not None and replayed.state == "pending"
    await eventually(lambda: state_is(db, job_id, "succeeded"))
    assert (await job(db, job_id)).attempts == 1
