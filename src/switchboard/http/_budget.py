"""The proactive rate budget: per connection and endpoint class, shared between processes.

The budget is a token bucket in which every spent token comes back exactly one window after it
was spent (a sliding-window log of the last ``capacity`` grants). Unlike a bucket that refills
continuously, this never lets more than ``capacity`` requests into *any* window of ``window``
seconds, which is what rolling-window providers (HubSpot's ``TEN_SECONDLY_ROLLING``) enforce.

Processes share it through one row per bucket: a process leases a block of tokens in one short
write transaction (row lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and serves its callers
from the block without touching the database, but must send each token within ``margin / 2``
seconds of the lease, or drop it. Each grant is kept for ``window + margin`` seconds, so a token
used late within its lease still cannot let a window hold more than ``capacity``: if N+1
requests fell into one window, their grants would span less than ``window + margin``, and the
last lease would have been refused. Grant times are wall-clock (hosts must be NTP-synced).

The block follows the process's demand (doubling while a lease is used up before it lapses,
shrinking to what was used when it lapses) up to a tenth of the capacity (more only for as many
callers as are waiting at once), so one process never holds more than that unsent. Dropped
tokens are handed back in the process's next lease transaction (the grants are removed from the
log: they were never sent); a process that stops or goes idle instead leaves them in the log
until they age out, so a killed process costs the others at most its last lease for at most
``window + margin`` seconds.

Providers' headers (read by the provider's :data:`RateLimitReader`) correct the budget downwards
only (``remaining`` below our own count means someone else spends on the same account); a 429
empties it until its Retry-After. A correction counts every grant in the log as spent: tokens
other processes leased but have not sent yet (at most a block each, for ``margin / 2``) make it
off by that much, the price of not writing every call.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Callable, Iterable
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

    @property
    def block(self) -> int:
        """The most tokens one lease takes ahead of demand: what one process may hold unsent."""
        return max(1, self.capacity // 10)


@dataclass(frozen=True)
class Lease:
    """A store's answer to a lease request."""

    granted: int
    wait: float
    """Seconds before a token may free up (when none was granted)."""
    free: int
    """Tokens still free in the shared bucket after this lease."""
    at: float
    """The grant time recorded in the log: what a hand-back names."""


class BudgetExhausted(Exception):
    """The next token is further away than the caller may wait."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate budget exhausted for {wait:.3f}s")
        self.wait = wait


# --- the arithmetic, shared by both stores ------------------------------------------------------


def _live(grants: list[float], now: float, limit: Limit) -> list[float]:
    horizon = now - limit.window - limit.margin
    return sorted(g for g in grants if g > horizon)


def _hand_back(live: list[float], returned: Iterable[tuple[float, int]]) -> None:
    """Remove up to ``count`` grants recorded at exactly ``at`` for each hand-back, in place.

    Grants are counted, not named: if a correction moved some of the caller's grants later
    (corrections only move grants later), removing others left at ``at`` instead leaves a later
    entry standing for each send they stood for, which is only more cautious. A grant that
    already aged out is not looked for."""
    for at, count in returned:
        start = bisect.bisect_left(live, at)
        end = start
        while end < len(live) and live[end] == at and end - start < count:
            end += 1
        del live[start:end]


def take(
    grants: list[float],
    now: float,
    limit: Limit,
    want: int,
    returned: Iterable[tuple[float, int]] = (),
) -> tuple[int, list[float], float]:
    """Grant up to ``want`` tokens at ``now``, after removing the ``returned`` (grant time,
    count) of tokens never sent: (granted, new grants, wait before the next one)."""
    live = _live(grants, now, limit)
    _hand_back(live, returned)
    free = limit.capacity - len(live)
    granted = max(0, min(want, free))
    live.extend([now] * granted)
    if granted:
        return granted, live, 0.0
    # The k-th slot frees when the (len - capacity + k)-th oldest grant leaves the log. With
    # several callers waiting, wait for a batch of slots (up to a tenth of the capacity): under
    # a saturated budget every slot frees on its own, and a lease per slot would be a write
    # transaction per call, each as likely to be beaten to it by another process.
    batch = min(want, limit.block)
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
        self,
        connection: str,
        bucket: str,
        limit: Limit,
        want: int,
        returned: Iterable[tuple[float, int]] = (),
    ) -> Lease:
        """Hand back ``returned`` (grant time, count) tokens never sent, then lease up to
        ``want``, in one write."""
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
        self,
        connection: str,
        bucket: str,
        limit: Limit,
        want: int,
        returned: Iterable[tuple[float, int]] = (),
    ) -> Lease:
        now = self._clock.time()
        key = (connection, bucket)
        granted, grants, wait = take(self._logs.get(key, []), now, limit, want, returned)
        self._logs[key] = grants
        return Lease(granted, wait, free_tokens(grants, now, limit), now)

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
        self,
        connection: str,
        bucket: str,
        limit: Limit,
        want: int,
        returned: Iterable[tuple[float, int]] = (),
    ) -> Lease:
        async with self._db.session() as session:
            row = await self._locked_row(session, connection, bucket, limit)
            now = self._clock.time()  # read under the lock: the decision time
            granted, grants, wait = take(list(row.grants), now, limit, want, returned)
            row.grants = grants
            row.capacity, row.window_seconds, row.updated_at = (
                limit.capacity,
                limit.window,
                utcnow(),
            )
        return Lease(granted, wait, free_tokens(grants, now, limit), now)

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
    """Serves this process's callers from its current lease; one lease transaction at a time."""

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
        self._free: int | None = limit.capacity if limit else None  # the bucket's, last seen
        self._store = store
        self._clock = clock
        self._read = reader or standard_headers
        self._block = 1  # what the next lease asks for (or the callers waiting, if more)
        self._leased_at = 0.0  # the current lease: its grant time in the log (wall clock),
        self._size = 0  # the tokens it granted,
        self._left = 0  # those not spent yet,
        self._use_by = 0.0  # and when they lapse (monotonic)
        self._returns: dict[float, int] = {}  # lapsed, never sent: grant time -> count
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._empty_until = 0.0

    @property
    def remaining(self) -> int | None:
        """Tokens not spent yet as this process sees them: the shared bucket's free ones at the
        last lease or correction, plus this process's leased ones it has not sent (unspent, or
        lapsed and to be handed back); None while no limit is known."""
        if self._free is None:
            return None
        return self._free + self._left + sum(self._returns.values())

    def _take_local(self, limit: Limit) -> bool:
        if self._left and self._clock.monotonic() >= self._use_by:
            # Leased too long ago: sending it now could break a window. The next lease hands
            # the rest back, and asks for no more than this one used.
            self._returns[self._leased_at] = self._returns.get(self._leased_at, 0) + self._left
            self._block = max(1, self._size - self._left)
            self._left = 0
        if not self._left:
            return False
        self._left -= 1
        if not self._left:  # used up in time: the demand is at least this, ask for more
            self._block = min(limit.block, max(self._block, self._size) * 2)
        return True

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
                if self._take_local(limit):
                    return waited
                wait = self._empty_until - self._clock.monotonic()
                if wait <= 0:
                    async with self._lock:
                        if self._take_local(limit):
                            return waited
                        started = self._clock.monotonic()
                        want = min(limit.block, self._block)
                        want = min(limit.capacity, max(self._waiting, want))
                        # Lost if the transaction fails: a hand-back only frees tokens early,
                        # and one applied twice could remove someone else's grants.
                        returned = list(self._returns.items())
                        self._returns.clear()
                        lease = await self._store.lease(
                            self.connection, self.bucket, limit, want, returned
                        )
                        granted, wait, self._free = lease.granted, lease.wait, lease.free
                        self._leased_at, self._size, self._left = lease.at, granted, granted
                        self._use_by = started + limit.margin / 2
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
                self._free = learned.capacity
        limit = self.limit
        if limit is None:
            return
        remaining, reset_in = seen.remaining, seen.reset_in
        if response.status_code == 429:
            remaining, reset_in = 0, retry_after if retry_after is not None else reset_in
        if remaining is None:
            return
        # Against the bucket's free tokens, not ours: the provider has not seen our unsent lease.
        estimate = self._free if self._free is not None else limit.capacity
        if remaining >= estimate and response.status_code != 429:
            return  # headers only ever lower the budget; skip the round trip when they agree
        # The correction counts every grant in the log as spent, ours unsent too: drop them,
        # and never hand them back (that would free more than the provider has left).
        self._left = 0
        self._returns.clear()
        self._free = await self._store.correct(
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
