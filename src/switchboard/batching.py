"""Group commit: many small units of work that arrive together share one write transaction.

SQLite admits one writer at a time, so a request that writes pays for a whole transaction
(begin, lock, statements, commit) while every other writer waits. Under concurrent load the
hub instead gathers what has queued while the previous transaction ran and applies it in one
go; each caller still gets its answer only after the commit (nothing is acknowledged that is not
durable). A batch that fails is retried one item per transaction, so one bad item fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.db import Database

T = TypeVar("T")
R = TypeVar("R")

ApplyBatch = Callable[[AsyncSession, list[T]], Awaitable[list[R]]]


class BatchWriter(Generic[T, R]):
    def __init__(self, db: Database, apply: ApplyBatch[T, R], *, max_batch: int = 256) -> None:
        self.db = db
        self.apply = apply
        self.max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            try:
                results = await self._run([item for item, _ in batch])
            except Exception:  # fall back to one transaction per item: only the bad one fails
                for item, future in batch:
                    try:
                        [result] = await self._run([item])
                    except Exception as exc:
                        _settle(future, exc=exc)
                    else:
                        _settle(future, result=result)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result=result)

    async def _run(self, items: list[T]) -> list[R]:
        async with self.db.session() as session:
            return await self.apply(session, items)


def _settle(
    future: asyncio.Future[R], *, result: R | None = None, exc: BaseException | None = None
) -> None:
    if future.done():  # the caller went away (client disconnected); the work is done anyway
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
