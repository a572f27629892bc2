"""The retry policy: what is retried, how long to wait, and when to stop waiting here."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

RETRYABLE_STATUS = frozenset({429, *range(500, 600)})

# Methods whose repetition has no extra effect (RFC 9110 §9.2.2). PATCH is not idempotent in
# general; callers whose PATCH sets fields (HubSpot, ACME) pass ``idempotent=True``.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

# Transport errors raised before any byte of the request left: always safe to repeat.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """Limits of the retry loop.

    ``max_attempts`` bounds the tries of one call. On the request path the waits of one call add
    up to at most ``request_max_wait`` seconds: a longer wait raises ``TransientError`` with
    ``retry_after`` instead (the API answers 503 + Retry-After). In a job, waits add up to at most
    ``job_max_wait``: a longer one becomes ``RetryLater`` so the worker slot is freed.
    """

    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    request_max_wait: float = 10.0
    job_max_wait: float = 60.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(n-1)))."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** max(failures - 1, 0))
        return rng.uniform(0, ceiling)


def retry_after(response: httpx.Response, now: float) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or an HTTP-date, RFC 9110 §10.2.3).

    ``now`` is the wall clock in epoch seconds; a date in the past means "now" (0).
    """
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(when.timestamp() - now, 0.0)
