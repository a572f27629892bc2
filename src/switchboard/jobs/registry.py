"""Handlers by kind, the context they run with, and the exceptions that steer retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.config import Config
from switchboard.db import Database

if TYPE_CHECKING:  # switchboard.http imports RetryLater from here
    from switchboard.http import Outbound


class RetryLater(Exception):
    """Run this job again in ``seconds`` (e.g. a provider's Retry-After).

    It does not use up one of the job's attempts; only the deadline bounds it.
    """

    def __init__(self, seconds: float, reason: str = "") -> None:
        self.seconds = max(float(seconds), 0.0)
        self.reason = reason or f"retry later ({self.seconds:g}s)"
        super().__init__(self.reason)


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


Handler = Callable[[JobContext], Awaitable[None]]


class Registry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        """Decorator: ``@registry.handler("users.propagate")``."""

        def register(fn: Handler) -> Handler:
            if kind in self._handlers and self._handlers[kind] is not fn:
                raise ValueError(f"a handler for job kind {kind!r} is already registered")
            self._handlers[kind] = fn
            return fn

        return register

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)


registry = Registry()
"""The process-wide registry features register their handlers in."""

handler = registry.handler
