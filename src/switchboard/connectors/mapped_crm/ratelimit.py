"""A mapped CRM's rate-limit headers, read under the names its :class:`RateLimitHeaders` gives.

:func:`read_rate_limit` is the reader the outbound budget applies to every answer of the
connection (it lowers the budget to ``remaining`` until ``reset_in``; ``limit`` sizes a budget
that has no configured ``rate_limit``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from switchboard.connectors.mapped_crm.settings import MappedCrmConnection
from switchboard.connectors.mapped_crm.spec import RateLimitHeaders
from switchboard.http import Limit, RateLimitReader
from switchboard.http import RateLimitHeaders as BudgetHeaders

_EPOCH_FROM = 1_000_000_000  # "auto": a reset this large is an epoch time, not a wait


@dataclass(frozen=True)
class RateLimitReading:
    """What one answer said; each part ``None`` when its header is absent or unreadable."""

    remaining: int | None = None
    reset_in: float | None = None
    """Seconds until the window frees up (from ``reset``, else ``retry_after``)."""
    limit: int | None = None


def read_rate_limit(
    names: RateLimitHeaders, headers: Mapping[str, str], now: float
) -> RateLimitReading:
    """The rate-limit state in ``headers`` (any case), ``now`` in epoch seconds."""

    def number(name: str | None) -> float | None:
        raw = headers.get(name.lower(), headers.get(name)) if name else None
        if raw is None:
            return None
        try:
            value = float(raw.strip())
        except ValueError:
            return None
        return value if value >= 0 and value == value and value != float("inf") else None

    remaining, limit = number(names.remaining), number(names.limit)
    reset = number(names.reset)
    reset_in: float | None = None
    if reset is not None:
        epoch = names.reset_is == "epoch" or (names.reset_is == "auto" and reset > _EPOCH_FROM)
        reset_in = max(reset - now, 0.0) if epoch else reset
    if reset_in is None:
        reset_in = number(names.retry_after)
    return RateLimitReading(
        remaining=None if remaining is None else int(remaining),
        reset_in=reset_in,
        limit=None if limit is None else int(limit),
    )


def budget_reader(conn: MappedCrmConnection) -> RateLimitReader:
    """The outbound budget's reader for a connection, under its configured header names; the
    ``limit`` header sizes the budget over the configured ``window`` (without one it is not
    passed on: a count alone does not say its window)."""
    names = conn.rate_limit_headers
    window = names.window.total_seconds() if names.window is not None else None

    def read(headers: httpx.Headers, now: float) -> BudgetHeaders:
        reading = read_rate_limit(names, headers, now)
        limit = Limit(reading.limit, window) if reading.limit and window else None
        return BudgetHeaders(remaining=reading.remaining, reset_in=reading.reset_in, limit=limit)

    return read
