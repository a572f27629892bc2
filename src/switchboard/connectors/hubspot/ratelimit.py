"""HubSpot's rate-limit headers, for the budget (``X-HubSpot-RateLimit-*``, HUBSPOT.md)."""

from __future__ import annotations

import httpx

from switchboard.http import Limit, RateLimitHeaders, header_int, standard_headers


def read_headers(headers: httpx.Headers, now: float) -> RateLimitHeaders:
    """``-Remaining`` of the ``-Max`` requests per ``-Interval-Milliseconds`` window HubSpot
    announces; the standard ``X-RateLimit-*`` when those are absent (e.g. search answers)."""
    cap = header_int(headers.get("x-hubspot-ratelimit-max"))
    interval = header_int(headers.get("x-hubspot-ratelimit-interval-milliseconds"))
    limit = Limit(cap, interval / 1000) if cap and interval and cap > 0 and interval > 0 else None
    remaining = header_int(headers.get("x-hubspot-ratelimit-remaining"))
    if remaining is None:
        standard = standard_headers(headers, now)
        return RateLimitHeaders(standard.remaining, standard.reset_in, limit)
    return RateLimitHeaders(remaining=remaining, limit=limit)
