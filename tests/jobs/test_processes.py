"""Real worker processes (``switchboard worker``) against one database."""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from switchboard.db import Database
from switchboard.jobs import enqueue
from switchboard.models import Job
from tests.support import Backend, Process, eventually, switchboard_env, wait_until


@pytest.fixture
def record(tmp_path: Path) -> Path:
    path = tmp_path / "record.jsonl"
    path.touch()
    return path


@pytest.fixture
def workers(backend: Backend, tmp_path: Path, record: Path) -> Iterator[Any]:
    started: list[Process] = []

    def start(name: str, **env: str) -> Process:
        proc = Process(
            ["worker"],
            switchboard_env(
                backend,
                tmp_path,
                SWITCHBOARD_JOB_MODULES="tests.jobs.handlers",
                SWITCHBOARD_TEST_RECORD=str(record),
                **env,
            ),
            cwd=tmp_path,
            log=tmp_path / f"{name}.log",
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def lines(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines() if line]


async def count(db: Database, state: str) -> int:
    """How many of the test's own jobs are in ``state``: a worker process also runs the hub's
    schedules (``webhooks.prune`` every minute, on the minute), whose jobs count for nothing."""
    query = select(func.count()).where(Job.kind == "test.record", Job.state == state)
    async with db.read_session() as session:
        return int((await session.scalar(query)) or 0)


async def report(db: Database, record: Path, *procs: Process) -> str:
    """What a wait that timed out needs to be diagnosable from the failure alone: the jobs by
    kind and state, the unfinished ones, each process's progress in the record, and the
    workers' logs (a CI run keeps nothing else)."""
    async with db.read_session() as session:
        rows = await session.execute(
            select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
        )
        states = {f"{kind} {state}": n for kind, state, n in rows.all()}
        unfinished = (
            await session.scalars(
                select(Job).where(Job.state != "succeeded").order_by(Job.id).limit(20)
            )
        ).all()
    out = [f"jobs by kind and state: {states}"]
    out += [
        f"job {j.id} key={j.key} {j.state} attempts={j.attempts} worker={j.worker} "
        f"run_at={j.run_at} lease_until={j.lease_until} error={j.last_error}"
        for j in unfinished
    ]
    events = lines(record)
    now = time.time()
    for pid in sorted({e["pid"] for e in events}):
        mine = [e for e in events if e["pid"] == pid]
        ends = sum(e["event"] == "end" for e in mine)
        out.append(
            f"pid {pid}: {len(mine) - ends} starts, {ends} ends, last {now - mine[-1]['t']:.1f}s ago"
        )
    for proc in procs:
        out += [
            f"--- {proc.log_path.name}: pid {proc.proc.pid}, exit {proc.proc.poll()}",
            proc.output()[-6000:],
        ]
    return "\n".join(out)


async def test_job_of_a_killed_worker_completes_after_its_lease_expires(
    db: Database, workers: Any, record: Path
) -> None:
    doomed = workers("doomed", SWITCHBOARD_JOB_LEASE_SECONDS="1.5")
    async with db.session() as session:
        job_id = await enqueue(session, "test.record", {"sleep_first": 60})
    wait_until(lambda: any(e["event"] == "start" for e in lines(record)), timeout=30)
    doomed.kill()  # SIGKILL mid-job: no cleanup, the lease just stops being renewed

    workers("rescuer", SWITCHBOARD_JOB_LEASE_SECONDS="1.5")

    async def done() -> bool:
        async with db.read_session() as session:
            found = await session.get(Job, job_id)
            return found is not None and found.state == "succeeded"

    await eventually(done, timeout=30)
    events = lines(record)
    assert [(e["event"], e["attempt"]) for e in events] == [
        ("start", 1),
        ("start", 2),
        ("end", 2),
    ]
    assert events[0]["pid"] == doomed.proc.pid != events[1]["pid"]


async def test_two_workers_never_share_a_job_and_keep_per_key_order(
    db: Database, workers: Any, record: Path
) -> None:
    keys = [f"user-{i}" for i in range(6)]
    first = workers("w1", SWITCHBOARD_WORKER_CONCURRENCY="4")
    second = workers("w2", SWITCHBOARD_WORKER_CONCURRENCY="4")
    # Both polling before the jobs appear (one worker alone can finish them all while the
    # other is still starting), and jobs long enough that a key's run spans several polls.
    try:
        wait_until(lambda: all("worker_started" in w.output() for w in (first, second)), timeout=30)
    except AssertionError:
        pytest.fail(await report(db, record, first, second))
    async with db.session() as session:
        for seq in range(120):
            key = keys[seq % len(keys)] if seq % 4 else None  # a quarter unkeyed
            await enqueue(session, "test.record", {"seq": seq, "sleep": 0.02}, key=key)

    async def all_done() -> bool:
        return await count(db, "succeeded") == 120

    try:
        await eventually(all_done, timeout=60)
    except AssertionError:
        pytest.fail(await report(db, record, first, second))
    events = lines(record)
    starts = [e for e in events if e["event"] == "start"]
    # Exactly once here (nobody died), and both processes took part.
    assert sorted(e["seq"] for e in starts) == list(range(120))
    assert {e["pid"] for e in starts} == {first.proc.pid, second.proc.pid}

    spans: dict[int, dict[str, float]] = defaultdict(dict)
    for e in events:
        spans[e["id"]][e["event"]] = e["t"]
    by_key: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for e in starts:
        if e["key"] is not None:
            span = spans[e["id"]]
            by_key[e["key"]].append((span["start"], span["end"], e["seq"]))
    for key, runs in by_key.items():
        runs.sort()
        assert [seq for _, _, seq in runs] == sorted(seq for _, _, seq in runs), key
        for (_, end, _), (start, _, _) in itertools.pairwise(runs):
            assert end <= start, f"{key}: two jobs of one key overlapped"
