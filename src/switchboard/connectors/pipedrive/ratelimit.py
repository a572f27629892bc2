"""Pipedrive's rate-limit headers, read into what the outbound budget acts on.

Every answer carries ``x-ratelimit-limit`` (requests per window), ``x-ratelimit-remaining``
(left in the current window) and ``x-ratelimit-reset`` (seconds until the window resets). The
last two are the budget's standard headers; the window is 2 seconds, per token (API token or
OAuth access token): the headers do not say so, Pipedrive's documentation does. A 429 carries
``Retry-After`` (seconds), which the outbound layer already honours.
"""

from __future__ import annotations

import httpx

from switchboard.http import Limit, RateLimitHeaders, header_int, standard_headers

WINDOW_SECONDS = 2.0


def read_headers(headers: httpx.Headers, now: float) -> RateLimitHeaders:
    """The standard ``x-ratelimit-remaining``/``-reset``, and ``x-ratelimit-limit`` per 2 s."""
    standard = standard_headers(headers, now)
    capacity = header_int(headers.get("x-ratelimit-limit"))
    limit = Limit(capacity, WINDOW_SECONDS) if capacity is not None and capacity > 0 else None
    return RateLimitHeaders(standard.remaining, standard.reset_in, limit)
