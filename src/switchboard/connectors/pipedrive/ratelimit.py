"""Pipedrive's rate-limit headers, read into what the outbound budget acts on.

Every answer carries ``x-ratelimit-limit`` (requests per window), ``x-ratelimit-remaining``
(left in the current window) and ``x-ratelimit-reset`` (seconds until the window resets). The
window is 2 seconds, per token (API token or OAuth access token); the headers do not say so,
Pipedrive's documentation does. A 429 carries ``Retry-After`` (seconds), which the outbound layer
already honours.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

WINDOW_SECONDS = 2.0


@dataclass(frozen=True)
class RateLimitHeaders:
    """What one answer says of the budget: every field ``None`` when the answer did not say."""

    capacity: int | None
    """Requests allowed per window."""
    window: float | None
    """The window's length, in seconds."""
    remaining: int | None
    reset_in: float | None
    """Seconds until the window resets."""


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return max(number, 0.0) if number == number else None  # NaN is no answer


def read_rate_limit(headers: httpx.Headers) -> RateLimitHeaders:
    capacity = _int(headers.get("x-ratelimit-limit"))
    if capacity is not None and capacity <= 0:
        capacity = None
    remaining = _int(headers.get("x-ratelimit-remaining"))
    return RateLimitHeaders(
        capacity=capacity,
        window=WINDOW_SECONDS if capacity is not None else None,
        remaining=max(remaining, 0) if remaining is not None else None,
        reset_in=_seconds(headers.get("x-ratelimit-reset")),
    )
