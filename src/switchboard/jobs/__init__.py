"""Durable jobs and schedules on the application database.

Contract: a job is written by :func:`enqueue` inside the caller's transaction (it exists if and
only if the state change that needs it commits); handlers are registered by kind with
``@handler("kind")`` and run **at least once** — a worker that dies after a handler's effect but
before recording success runs it again once its lease lapses — so handlers must be idempotent.
Jobs sharing a key run one at a time in enqueue order. A handler steers retries by raising
:class:`RetryLater` (wait this long; does not use an attempt), ``TerminalError`` (dead now) or
anything else (exponential backoff with full jitter until ``max_attempts`` or the deadline).
``@batch_handler("kind", size=N)`` takes up to N due jobs of a kind at once (one provider request
for many changes), each job keeping its own outcome (``JobContext.fail``).
"""

from switchboard.errors import RetryLater
from switchboard.jobs.queue import enqueue
from switchboard.jobs.registry import JobContext, handler, registry
from switchboard.jobs.schedules import ScheduleSpec

batch_handler = registry.batch_handler

__all__ = [
    "JobContext",
    "RetryLater",
    "ScheduleSpec",
    "batch_handler",
    "enqueue",
    "handler",
    "registry",
]
