"""Handlers by kind, the context they run with, and the exceptions that steer retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.db import Database

if TYPE_CHECKING:
    from switchboard.config import Config
    from switchboard.http import Outbound


OutcomeWrite = Callable[[AsyncSession, "str | None"], Awaitable[None]]
"""``write(session, state)``: see :meth:`JobContext.on_outcome`."""


@dataclass
class JobContext:
    """What a handler gets. Handlers must be idempotent: execution is at-least-once (a worker
    that dies after the handler's effect but before recording success runs it again)."""

    id: int
    kind: str
    key: str | None
    payload: dict[str, Any]
    attempt: int
    db: Database
    config: Config
    outbound: Outbound | None = None
    """The process's outbound clients (call providers with ``mode="job"``)."""
    outcome_writes: list[OutcomeWrite] = field(default_factory=list)
    batch: int | None = None
    """The batch this run is part of (the id of its first job); None when it runs alone."""
    error: BaseException | None = None
    """This job's own failure in a batch (:meth:`fail`); None: it succeeded."""

    def fail(self, error: BaseException) -> None:
        """In a batch handler: this job's run failed as if its handler had raised ``error``
        (``RetryLater``, ``TerminalError``, ``TransientError`` or anything else, with the usual
        meaning) while the rest of the batch goes on. A batch handler that raises fails every
        job it did not mark."""
        self.error = error

    def on_outcome(self, write: OutcomeWrite) -> None:
        """Have ``write(session, state)`` run in the transaction that records this run's
        outcome, whether the handler returns or raises: the handler's own record of the run
        (say, a user's sync state) commits together with the job's, or not at all, and costs
        no transaction of its own. ``state`` is the job's new state (``"succeeded"``,
        ``"pending"`` for a retry, ``"dead"``), or None when this worker no longer owned the
        job (its lease lapsed and another worker took it). A write that raises loses the
        outcome: the job runs again once its lease lapses."""
        self.outcome_writes.append(write)


Handler = Callable[[JobContext], Awaitable[None]]
BatchHandler = Callable[[list[JobContext]], Awaitable[None]]
Concurrency = int | Callable[["Config"], int]


class Registry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._batch_handlers: dict[str, BatchHandler] = {}
        self._batch_sizes: dict[str, int] = {}
        self._concurrency: dict[str, Concurrency] = {}

    def handler(
        self, kind: str, *, concurrency: Concurrency | None = None
    ) -> Callable[[Handler], Handler]:
        """Decorator: ``@registry.handler("users.propagate")`` (or :meth:`add`).

        ``concurrency`` caps the jobs of this kind one worker runs at once (a number, or a
        function of the configuration). Give it to kinds that wait on a shared provider: when the
        provider is rate limited their jobs spend most of their time waiting for its budget, and
        uncapped they would take every slot of the worker, holding up unrelated kinds (a report,
        a feed sync) behind thousands of queued calls.
        """

        def register(fn: Handler) -> Handler:
            self.add(kind, fn, concurrency=concurrency)
            return fn

        return register

    def add(self, kind: str, fn: Handler, *, concurrency: Concurrency | None = None) -> None:
        """Run jobs of ``kind`` with ``fn`` (see :meth:`handler`)."""
        if self.get(kind) is not None and self._handlers.get(kind) is not fn:
            raise ValueError(f"a handler for job kind {kind!r} is already registered")
        self._handlers[kind] = fn
        if concurrency is not None:
            self._concurrency[kind] = concurrency

    def batch_handler(
        self, kind: str, *, size: int, concurrency: Concurrency | None = None
    ) -> Callable[[BatchHandler], BatchHandler]:
        """Decorator for a handler that takes up to ``size`` jobs of ``kind`` at once (one
        provider request for many changes): ``fn(jobs: list[JobContext])``.

        The worker claims up to ``size`` due jobs of the kind in one statement and hands them
        over together, never two of one key; a short queue goes out at once (no batching
        delay). Each job keeps its own attempts, deadline, retries and outcome: a job the
        handler marks with :meth:`JobContext.fail` fails alone, the others succeed when the
        handler returns; if it raises, every unmarked job fails with that error. One lease
        (heartbeat) covers the batch; a worker that dies mid-batch leaves each unfinished job
        to be retried. ``concurrency`` caps the batches of this kind one worker runs at once.
        """
        if size < 1:
            raise ValueError("a batch size is at least 1")

        def register(fn: BatchHandler) -> BatchHandler:
            self.add_batch(kind, fn, size=size, concurrency=concurrency)
            return fn

        return register

    def add_batch(
        self, kind: str, fn: BatchHandler, *, size: int, concurrency: Concurrency | None = None
    ) -> None:
        """Run jobs of ``kind`` up to ``size`` at once with ``fn`` (see :meth:`batch_handler`)."""
        if size < 1:
            raise ValueError("a batch size is at least 1")
        if self.get(kind) is not None and self._batch_handlers.get(kind) is not fn:
            raise ValueError(f"a handler for job kind {kind!r} is already registered")
        self._batch_handlers[kind] = fn
        self._batch_sizes[kind] = size
        if concurrency is not None:
            self._concurrency[kind] = concurrency

    def get(self, kind: str) -> Handler | BatchHandler | None:
        return self._handlers.get(kind) or self._batch_handlers.get(kind)

    def batch(self, kind: str) -> BatchHandler:
        """The handler of ``kind`` as one taking a batch (a plain handler takes batches of one)."""
        batch = self._batch_handlers.get(kind)
        if batch is not None:
            return batch
        single = self._handlers[kind]

        async def one(jobs: list[JobContext]) -> None:
            [ctx] = jobs
            await single(ctx)

        return one

    def batch_size(self, kind: str) -> int:
        return self._batch_sizes.get(kind, 1)

    def concurrency(self, kind: str, config: Config) -> int | None:
        """The cap on jobs of ``kind`` running at once in one worker (None: no cap)."""
        cap = self._concurrency.get(kind)
        if cap is None:
            return None
        return max(1, cap(config) if callable(cap) else cap)

    @property
    def kinds(self) -> list[str]:
        return sorted({*self._handlers, *self._batch_handlers})
