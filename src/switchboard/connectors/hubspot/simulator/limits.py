"""Rate limits: HubSpot's defaults, the rolling per-app window and the daily counter."""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field


class HubSpotLimits(BaseModel):
    """Rate limits; the defaults are HubSpot's (Free/Starter, private app)."""

    model_config = ConfigDict(extra="forbid")

    per_interval: int = Field(100, ge=1, description="Requests per rolling interval, per app.")
    interval_ms: int = Field(10_000, ge=1, description="The rolling interval.")
    daily: int = Field(250_000, ge=1, description="Requests per day, per account.")
    search_per_second: int = Field(5, ge=1, description="Search requests per search window.")
    search_window_ms: int = Field(1000, ge=1, description="The search window (1 s at HubSpot).")


class SlidingWindow:
    """A rolling-window limiter: at most ``limit`` hits in any ``window`` seconds, per key.

    Check and record happen under one lock, so concurrent requests can never overshoot.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> tuple[bool, int, float]:
        """Record a hit if allowed; returns (allowed, remaining, the monotonic time used)."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False, 0, now
            hits.append(now)
            return True, self.limit - len(hits), now


class DailyCounter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._day = ""
        self._count = 0

    def hit(self) -> tuple[bool, int]:
        today = datetime.now(UTC).date().isoformat()
        with self._lock:
            if today != self._day:
                self._day, self._count = today, 0
            if self._count >= self.limit:
                return False, 0
            self._count += 1
            return True, self.limit - self._count
