"""Outgoing webhooks: a retrying sender that runs on a simulator's event loop.

Simulators mutate their data from request handlers and from other threads (tests call their
Python API directly), so :meth:`Outbox.submit` is thread-safe: it queues the delivery and wakes the
loop. Each delivery is rebuilt for every attempt, because providers put the attempt number (and a
fresh timestamp, hence a fresh signature) in every retry.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# (url, body, headers) for attempt number n (0-based).
Build = Callable[[int], tuple[str, bytes, dict[str, str]]]


@dataclass
class Attempt:
    """One HTTP attempt of one delivery."""

    delivery: int
    attempt: int
    url: str
    status: int | None
    error: str | None
    at: float
    body: bytes = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_json(self) -> dict[str, Any]:
        return {
            "delivery": self.delivery,
            "attempt": self.attempt,
            "url": self.url,
            "status": self.status,
            "error": self.error,
            "at": self.at,
        }


class Outbox:
    """Posts queued deliveries with retries (exponential backoff) and bounded concurrency."""

    def __init__(
        self,
        *,
        max_attempts: int = 10,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        timeout: float = 5.0,
        concurrency: int = 10,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self._queue: deque[tuple[int, Build]] = deque()
        self._attempts: list[Attempt] = []
        self._next_id = 1
        self._in_flight = 0
        self._delivered = 0
        self._gave_up = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def submit(self, build: Build) -> int:
        """Queue a delivery (from any thread); returns its id."""
        with self._lock:
            delivery = self._next_id
            self._next_id += 1
            self._queue.append((delivery, build))
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)
        return delivery

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout)
        self._semaphore = asyncio.Semaphore(self.concurrency)
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            if self._queue:
                self._wake.set()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        with self._lock:
            self._loop = None
        tasks = [t for t in (self._worker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing in flight (retries waiting count as in flight)."""
        with self._lock:
            return not self._queue and self._in_flight == 0

    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "queued": len(self._queue),
                "in_flight": self._in_flight,
                "delivered": self._delivered,
                "gave_up": self._gave_up,
                "attempts": len(self._attempts),
            }

    def clear(self) -> None:
        with self._lock:
            self._attempts.clear()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if not self._queue:
                        break
                    delivery, build = self._queue.popleft()
                    self._in_flight += 1
                task = asyncio.create_task(self._deliver(delivery, build))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: int, build: Build) -> None:
        assert self._client is not None
        try:
            for attempt in range(self.max_attempts):
                url, body, headers = build(attempt)
                status: int | None = None
                error: str | None = None
                async with self._semaphore:
                    try:
                        response = await self._client.post(url, content=body, headers=headers)
                        status = response.status_code
                    except httpx.HTTPError as exc:
                        error = f"{type(exc).__name__}: {exc}"
                record = Attempt(delivery, attempt, url, status, error, time.time(), body)
                with self._lock:
                    self._attempts.append(record)
                    if record.ok:
                        self._delivered += 1
                if record.ok:
                    return
                if attempt + 1 < self.max_attempts:
                    await asyncio.sleep(min(self.backoff_cap, self.backoff_base * 2**attempt))
            with self._lock:
                self._gave_up += 1
        finally:
            with self._lock:
                self._in_flight -= 1
