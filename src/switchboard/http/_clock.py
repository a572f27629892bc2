"""Time, as the outbound client sees it: injectable so tests never really wait."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What the retry loop, the rate budget, the breaker and the token caches read and wait on.

    ``time()`` is wall-clock epoch seconds (Retry-After dates, token expiry, budget entries shared
    with other processes); ``monotonic()`` measures elapsed time within this process.
    """

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))
