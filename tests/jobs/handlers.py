"""Job handlers for worker subprocesses in tests (loaded with SWITCHBOARD_JOB_MODULES).

Each run appends JSON lines to ``$SWITCHBOARD_TEST_RECORD`` so the test can see, across
processes, which job ran where and when: a ``start`` line before the work, an ``end`` line after.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from switchboard.jobs import JobContext, Registry


def _write(line: dict[str, object]) -> None:
    # One write() of one short line with O_APPEND: lines from several processes never interleave.
    with open(os.environ["SWITCHBOARD_TEST_RECORD"], "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


async def record(ctx: JobContext) -> None:
    base = {"id": ctx.id, "key": ctx.key, "seq": ctx.payload.get("seq"), "pid": os.getpid()}
    _write({**base, "event": "start", "attempt": ctx.attempt, "t": time.time()})
    sleep = ctx.payload.get("sleep_first", 0) if ctx.attempt == 1 else 0
    await asyncio.sleep(sleep or ctx.payload.get("sleep", 0))
    _write({**base, "event": "end", "attempt": ctx.attempt, "t": time.time()})


async def noop(ctx: JobContext) -> None:
    return None


def register(registry: Registry) -> None:
    registry.add("test.record", record)
    registry.add("test.noop", noop)
