"""Durable jobs and schedules on the application database.

Contract: a job is written by :func:`enqueue` inside the caller's transaction (it exists if and
only if the state change that needs it commits); handlers are listed by kind in a
:class:`Registry` (the hub's: ``switchboard.features.job_registry``) and run **at least once**
— a worker that dies after a handler's effect but before recording success runs it again once
its lease lapses — so handlers must be idempotent. Jobs sharing a key run one at a time in
enqueue order. A handler steers retries by raising :class:`RetryLater` (wait this long; does not
use an attempt), ``TerminalError`` (dead now) or anything else (exponential backoff with full
jitter until ``max_attempts`` or the deadline). A batch handler
(``Registry.add_batch(kind, fn, size=N)``) takes up to N due jobs of a kind at once (one
provider request for many changes), each job keeping its own outcome (``JobContext.fail``).
"""

from switchboard.errors import RetryLater
from switchboard.jobs.queue import enqueue
from switchboard.jobs.registry import JobContext, Registry
from switchboard.jobs.schedules import ScheduleSpec

__all__ = ["JobContext", "Registry", "RetryLater", "ScheduleSpec", "enqueue"]
