"""A circuit breaker per connection (per process).

    closed --N consecutive failures--> open --cool-down--> half_open --probe ok--> closed
                                        ^                      |
                                        '-----probe failed-----'

Failures are transport errors and 5xx answers; a 4xx or a 429 proves the provider is up. While
open, calls fail at once (no network) with the remaining cool-down as their Retry-After; half
open, exactly one call goes through as the probe and the others still fail fast.
"""

from __future__ import annotations

from typing import Literal

from switchboard.http._clock import Clock

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int, cooldown: float, clock: Clock) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock.monotonic() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> float | None:
        """Admit one call: ``None`` if it may go, else the seconds until a probe may go."""
        state = self.state
        if state == "closed":
            return None
        assert self._opened_at is not None
        if state == "half_open" and not self._probing:
            self._probing = True
            return None
        remaining = self._opened_at + self.cooldown - self._clock.monotonic()
        # A probe is in flight: the others wait about one cool-down step, not forever.
        return max(remaining, 1.0 if self._probing else 0.0)

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at = self._clock.monotonic()
        self._probing = False

    def release(self) -> None:
        """The admitted call ended without a verdict (e.g. cancelled): let another probe go."""
        self._probing = False
