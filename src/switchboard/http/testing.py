"""Test helpers: a clock whose waits return at once (the idea of hynek/stamina's testing mode).

``Outbound(config, db, clock=FakeClock())`` keeps every retry, Retry-After and breaker decision in
the code path while tests run in milliseconds, and ``clock.sleeps`` records each wait exactly.
"""

from __future__ import annotations

import asyncio


class FakeClock:
    """A clock that advances only when something sleeps on it or a test calls :meth:`advance`.

    Sleeping moves both the wall and the monotonic time forward by the requested amount, so code
    waiting for a Retry-After or a breaker cool-down observes that the time has passed.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._wall = start
        self._mono = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)  # still a scheduling point, like a real sleep
