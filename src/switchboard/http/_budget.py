"""The proactive rate budget: per connection and endpoint class, shared between processes.

The budget is a token bucket in which every spent token comes back exactly one window after it
was spent (a sliding-window log of the last ``capacity`` grants). Unlike a bucket that refills
continuously, this never lets more than ``capacity`` requests into *any* window of ``window``
seconds, which is what rolling-window providers (HubSpot's ``TEN_SECONDLY_ROLLING``) enforce.

Processes share it through one row per bucket: a process leases a few tokens at a time in a short
write transaction (row lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and must send them
within ``margin / 2`` seconds, or drop them. Each grant is kept for ``window + margin`` seconds, so
a token used late within its lease still cannot let a window hold more than ``capacity``:
if N+1 requests fell into one window, their grants would span less than ``window + margin``, and
the last grant would have been refused. Grant times are wall-clock (hosts must be NTP-synced).

Providers' headers (read by the provider's :data:`RateLimitReader`) correct the budget downwards
only (``remaining`` below our own count means someone else spends on the same account); a 429
empties it until its Retry-After.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.db import Database, insert, utcnow
from switchboard.http._clock import Clock
from switchboard.models import RateBucket
from switchboard.settings import RateLimit

DEFAULT_BUCKET = "default"
_MAX_MARGIN = 0.5
_EPSILON = 0.001


@dataclass(frozen=True)
class Bucket:
    """An endpoint class with its own budget, e.g. ``Bucket("search", "5/1s")`` for HubSpot
    search. Without a limit it uses the connection's ``rate_limit``."""

    name: str
    limit: RateLimit | str | None = None

    def rate_limit(self) -> RateLimit | None:
        if isinstance(self.limit, str):
            return RateLimit.model_validate(self.limit)
        return self.limit


@dataclass(frozen=True)
class Limit:
    capacity: int
    window: float

    @classmethod
    def of(cls, rate: RateLimit) -> Limit:
        return cls(rate.requests, rate.per.total_seconds())

    @property
    def margin(self) -> float:
        return min(_MAX_MARGIN, self.window / 10)


class BudgetExhausted(Exception):
    """The next token is further away than the caller may wait."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate budget exhausted for {wait:.3f}s")
        self.wait = wait


# --- the arithmetic, shared by both stores ------------------------------------------------------


def _live(grants: list[float], now: float, limit: Limit) -> list[float]:
    horizon = now - limit.window - limit.margin
    return sorted(g for g in grants if g > horizon)


def take(
    grants: list[float], now: float, limit: Limit, want: int
) -> tuple[int, list[float], float]:
    """Grant up to ``want`` tokens at ``now``: (granted, new grants, wait before the next one)."""
    live = _live(grants, now, limit)
    free = limit.capacity - len(live)
    granted = max(0, min(want, free))
    live.extend([now] * granted)
    if granted:
        return granted, live, 0.0
    # The k-th slot frees when the (len - capacity + k)-th oldest grant leaves the log. With
    # several callers waiting, wait for a batch of slots (up to a tenth of the capacity): under
    # a saturated budget every slot frees on its own, and a lease per slot would be a write
    # transaction per call, each as likely to be beaten to it by another process.
    batch = min(want, max(1, limit.capacity // 10))
    blocking = live[len(live) - limit.capacity + batch - 1]
    return 0, live, max(blocking + limit.window + limit.margin - now, _EPSILON)


def correct(
    grants: list[float], now: float, limit: Limit, remaining: int, reset_in: float | None
) -> list[float]:
    """Lower the free tokens to ``remaining`` (never raise them).

    Without a reset time the spent tokens come back a window from now. With one (``reset_in``
    seconds), ``capacity - remaining`` slots must stay taken until the reset: grants that would
    expire earlier are held until then, and missing ones are added."""
    live = _live(grants, now, limit)
    remaining = max(remaining, 0)
    if reset_in is None:
        excess = limit.capacity - len(live) - remaining
        return sorted([*live, *([now] * excess)]) if excess > 0 else live
    at = now + reset_in - limit.window - limit.margin  # a grant at `at` leaves at the reset
    needed = limit.capacity - remaining
    short = needed - sum(1 for g in live if g >= at)
    if short <= 0:
        return live
    early = [i for i, g in enumerate(live) if g < at][-short:]  # the latest early ones
    for i in early:
        live[i] = at
    return sorted([*live, *([at] * (short - len(early)))])


def free_tokens(grants: list[float], now: float, limit: Limit) -> int:
    return max(limit.capacity - len(_live(grants, now, limit)), 0)


# --- where the log lives -----------------------------------------------------------------------


class BudgetStore(Protocol):
    async def lease(
        self, connection: str, bucket: str, limit: Limit, want: int
    ) -> tuple[int, float, int]:
        """(granted, wait if none granted, tokens still free)."""
        ...

    async def correct(
        self, connection: str, bucket: str, limit: Limit, remaining: int, reset_in: float | None
    ) -> int:
        """Apply a provider's remaining count; returns the tokens still free."""
        ...


class MemoryStore:
    """One process only (no database given)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._logs: dict[tuple[str, str], list[float]] = {}

    async def lease(
        self, connection: str, bucket: str, limit: Limit, want: int
    ) -> tuple[int, float, int]:
        now = self._clock.time()
        granted, grants, wait = take(self._logs.get((connection, bucket), []), now, limit, want)
        self._logs[(connection, bucket)] = grants
        return granted, wait, free_tokens(grants, now, limit)

    async def correct(
        self, connection: str, bucket: str, limit: Limit, remaining: int, reset_in: float | None
    ) -> int:
        now = self._clock.time()
        key = (connection, bucket)
        self._logs[key] = correct(self._logs.get(key, []), now, limit, remaining, reset_in)
        return free_tokens(self._logs[key], now, limit)


class DatabaseStore:
    """The ``rate_buckets`` table: every process of the deployment spends from the same row."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def _locked_row(
        self, session: AsyncSession, connection: str, bucket: str, limit: Limit
    ) -> RateBucket:
        key = (connection, bucket)
        row = await session.get(RateBucket, key, with_for_update=True, populate_existing=True)
        if row is None:
            await session.execute(
                insert(session, RateBucket)
                .values(
                    connection=connection,
                    bucket=bucket,
                    capacity=limit.capacity,
                    window_seconds=limit.window,
                    grants=[],
                    updated_at=utcnow(),
                )
                .on_conflict_do_nothing()
            )
            row = await session.get(RateBucket, key, with_for_update=True, populate_existing=True)
            assert row is not None
        return row

    async def lease(
        self, connection: str, bucket: str, limit: Limit, want: int
    ) -> tuple[int, float, int]:
        async with self._db.session() as session:
            row = await self._locked_row(session, connection, bucket, limit)
            now = self._clock.time()  # read under the lock: the decision time
            granted, grants, wait = take(list(row.grants), now, limit, want)
            row.grants = grants
            row.capacity, row.window_seconds, row.updated_at = (
                limit.capacity,
                limit.window,
                utcnow(),
            )
        return granted, wait, free_tokens(grants, now, limit)

    async def correct(
        self, connection: str, bucket: str, limit: Limit, remaining: int, reset_in: float | None
    ) -> int:
        async with self._db.session() as session:
            row = await self._locked_row(session, connection, bucket, limit)
            now = self._clock.time()
            grants = correct(list(row.grants), now, limit, remaining, reset_in)
            row.grants = grants
            row.updated_at = utcnow()
        return free_tokens(grants, now, limit)


# --- one bucket as seen by this process ----------------------------------------------------------


class LocalBudget:
    """Hands out leased tokens to this process's callers; one lease transaction at a time."""

    def __init__(
        self,
        connection: str,
        bucket: str,
        limit: Limit | None,
        store: BudgetStore,
        clock: Clock,
        *,
        learned: bool = False,
        reader: RateLimitReader | None = None,
    ) -> None:
        self.connection = connection
        self.bucket = bucket
        self.limit = limit
        self.learned = learned  # the limit came from the provider's headers, not the config
        self.remaining: int | None = limit.capacity if limit else None
        self._store = store
        self._clock = clock
        self._read = reader or standard_headers
        self._tokens: deque[float] = deque()  # use-by times (monotonic) of leased tokens
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._empty_until = 0.0

    def _take_local(self) -> bool:
        now = self._clock.monotonic()
        while self._tokens and self._tokens[0] <= now:
            self._tokens.popleft()  # leased too long ago: sending it now could break a window
        if self._tokens:
            self._tokens.popleft()
            return True
        return False

    async def acquire(self, max_wait: float) -> float:
        """Take one token, waiting for it if needed; returns the seconds waited.

        Raises :class:`BudgetExhausted` when the next token is more than ``max_wait`` away
        (counting what was already waited)."""
        limit = self.limit
        if limit is None:
            return 0.0
        waited = 0.0
        self._waiting += 1
        try:
            while True:
                if self._take_local():
                    return waited
                wait = self._empty_until - self._clock.monotonic()
                if wait <= 0:
                    async with self._lock:
                        if self._take_local():
                            return waited
                        started = self._clock.monotonic()
                        # Lease for the callers waiting now, no more: unused tokens are lost.
                        want = max(1, min(self._waiting, limit.capacity))
                        granted, wait, self.remaining = await self._store.lease(
                            self.connection, self.bucket, limit, want
                        )
                        use_by = started + limit.margin / 2
                        self._tokens.extend([use_by] * granted)
                        if not granted:
                            self._empty_until = self._clock.monotonic() + wait
                    if granted:
                        continue
                if waited + wait > max_wait:
                    raise BudgetExhausted(wait)
                await self._clock.sleep(wait)
                waited += wait
        finally:
            self._waiting -= 1

    async def observe(self, response: httpx.Response, retry_after: float | None) -> None:
        """Correct the budget from the provider's rate-limit headers (or a 429)."""
        seen = self._read(response.headers, self._clock.time())
        if self.limit is None or self.learned:
            learned = seen.limit
            if learned is not None and learned != self.limit:
                self.limit, self.learned = learned, True
                self.remaining = learned.capacity
        limit = self.limit
        if limit is None:
            return
        remaining, reset_in = seen.remaining, seen.reset_in
        if response.status_code == 429:
            remaining, reset_in = 0, retry_after if retry_after is not None else reset_in
        if remaining is None:
            return
        estimate = self.remaining if self.remaining is not None else limit.capacity
        if remaining >= estimate and response.status_code != 429:
            return  # headers only ever lower the budget; skip the round trip when they agree
        self._tokens.clear()
        self.remaining = await self._store.correct(
            self.connection, self.bucket, limit, remaining, reset_in
        )
        self._empty_until = 0.0


@dataclass(frozen=True)
class RateLimitHeaders:
    """What a provider's answer says about its rate limit."""

    remaining: int | None = None
    """Requests left in the current window."""
    reset_in: float | None = None
    """Seconds until the window resets (None: unknown)."""
    limit: Limit | None = None
    """The window the provider announces (learned when none is configured)."""


RateLimitReader = Callable[[httpx.Headers, float], RateLimitHeaders]
"""``(headers, now as epoch seconds)``: a provider's rate-limit headers."""


def standard_headers(headers: httpx.Headers, now: float) -> RateLimitHeaders:
    """``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (the draft RFC's names)."""
    return RateLimitHeaders(
        remaining=header_int(headers.get("x-ratelimit-remaining")),
        reset_in=_reset_in(headers.get("x-ratelimit-reset"), now),
    )


def header_int(value: str | None) -> int | None:
    """A header's integer value (``"12"``, ``"12.0"``), or None."""
    if value is None:
        return None
    try:
        return int(float(value))
    except (ValueError, OverflowError):  # "abc", "nan"; "inf"
        return None


def _reset_in(value: str | None, now: float) -> float | None:
    """``X-RateLimit-Reset`` is seconds until the reset, or (large values) an epoch time."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number):  # "nan", "inf": no answer
        return None
    return max(number - now, 0.0) if number > 1_000_000_000 else max(number, 0.0)
