"""Batch handlers: many jobs of one kind per handler call, each with its own outcome."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from switchboard.db import Database
from switchboard.errors import TerminalError
from switchboard.jobs import RetryLater, enqueue, queue
from switchboard.jobs.registry import JobContext
from switchboard.models import Job
from tests.jobs.conftest import Recorder
from tests.jobs.test_queue import job, state_is
from tests.support import eventually


async def jobs_of(db: Database, kind: str) -> list[Job]:
    async with db.read_session() as session:
        return list((await session.scalars(select(Job).where(Job.kind == kind))).all())


async def all_in(db: Database, kind: str, states: set[str], count: int) -> bool:
    found = await jobs_of(db, kind)
    return len(found) == count and all(j.state in states for j in found)


async def test_a_backlog_is_claimed_in_full_batches_of_distinct_keys(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    batches: list[list[JobContext]] = []

    @rec.registry.batch_handler("b", size=10, concurrency=1)
    async def run(jobs: list[JobContext]) -> None:
        batches.append(jobs)

    async with db.session() as session:
        for i in range(35):  # 7 keys, 5 jobs each, not coalesced: all must run, in order
            await enqueue(session, "b", {"seq": i}, key=f"k{i % 7}")
    await start_worker()
    await eventually(lambda: all_in(db, "b", {"succeeded"}, 35), timeout=30)
    assert sum(len(b) for b in batches) == 35
    assert all(len(b) <= 10 for b in batches)
    for b in batches:
        keys = [ctx.key for ctx in b]
        assert len(keys) == len(set(keys)), "two jobs of one key in one batch"
        if len(b) > 1:
            assert {ctx.batch for ctx in b} == {b[0].id}
    for k in range(7):
        seqs = [ctx.payload["seq"] for b in batches for ctx in b if ctx.key == f"k{k}"]
        assert seqs == sorted(seqs) and len(seqs) == 5
    rows = await jobs_of(db, "b")
    assert any(r.batch is not None for r in rows)


async def test_a_short_queue_goes_out_at_once_and_a_batch_of_one_is_a_plain_run(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    seen: list[list[int]] = []

    @rec.registry.batch_handler("b", size=100)
    async def run(jobs: list[JobContext]) -> None:
        seen.append([ctx.id for ctx in jobs])

    await start_worker()
    async with db.session() as session:
        one = await enqueue(session, "b", {})
    await eventually(lambda: state_is(db, one, "succeeded"), timeout=2)
    assert seen == [[one]]
    assert (await job(db, one)).batch is None


async def test_each_job_of_a_batch_has_its_own_outcome(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    runs: dict[int, int] = {}

    @rec.registry.batch_handler("b", size=10)
    async def run(jobs: list[JobContext]) -> None:
        for ctx in jobs:
            runs[ctx.id] = ctx.attempt
            role = ctx.payload["role"]
            if role == "terminal":
                ctx.fail(TerminalError("refused"))
            elif role == "later" and ctx.attempt == 1:
                ctx.fail(RetryLater(0.05, "wait"))
            elif role == "flaky" and ctx.attempt < 3:
                ctx.fail(RuntimeError("flaky"))

    async with db.session() as session:
        ids = {
            role: await enqueue(session, "b", {"role": role}, max_attempts=5)
            for role in ("ok", "terminal", "later", "flaky")
        }
    await start_worker()
    await eventually(lambda: state_is(db, ids["flaky"], "succeeded"), timeout=10)
    await eventually(lambda: state_is(db, ids["later"], "succeeded"), timeout=10)
    assert (await job(db, ids["ok"])).attempts == 1
    dead = await job(db, ids["terminal"])
    assert dead.state == "dead" and "refused" in (dead.last_error or "")
    later = await job(db, ids["later"])
    assert later.attempts == 2 and later.deferrals == 1
    assert runs[ids["flaky"]] == 3


async def test_a_batch_that_raises_fails_every_job_it_did_not_mark(
    db: Database, rec: Recorder, start_worker: Any
) -> None:
    @rec.registry.batch_handler("b", size=10)
    async def run(jobs: list[JobContext]) -> None:
        if jobs[0].attempt == 1:
            raise RetryLater(0.05, "rate limited")

    async with db.session() as session:
        ids = [await enqueue(session, "b", {"i": i}) for i in range(5)]
    await start_worker()
    await eventually(lambda: all_in(db, "b", {"succeeded"}, 5), timeout=10)
    for i in ids:
        found = await job(db, i)
        assert found.attempts == 2 and found.deferrals == 1


async def test_a_dead_worker_leaves_only_the_unfinished_jobs_to_retry(
    db: Database, rec: Recorder, start_worker: Any, config: Any
) -> None:
    """A batch claimed by a worker that died: every job returns to pending once the lease
    lapses and runs again; the jobs it had already finished are not run twice."""
    ran: list[int] = []

    @rec.registry.batch_handler("b", size=10)
    async def run(jobs: list[JobContext]) -> None:
        ran.extend(ctx.id for ctx in jobs)

    async with db.session() as session:
        ids = [await enqueue(session, "b", {"i": i}) for i in range(6)]
    async with db.session() as session:
        [claimed] = await queue.claim_batches(
            session,
            worker="dead-worker",
            kinds=["b"],
            limit=1,
            lease=timedelta(seconds=0.2),
            sizes={"b": 10},
        )
    assert sorted(j.id for j in claimed) == ids
    # It finished the first three before it died.
    async with db.session() as session:
        done = await queue.succeed_many(session, [(i, 1) for i in ids[:3]], worker="dead-worker")
    assert done == set(ids[:3])
    await start_worker()
    await eventually(lambda: all_in(db, "b", {"succeeded"}, 6), timeout=10)
    assert sorted(ran) == ids[3:]
