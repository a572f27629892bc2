"""One connection's outbound client: credentials, rate budget, breaker and retries per call."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import structlog

from switchboard.credentials import CredentialsUnavailable, TokenProvider, authorize
from switchboard.errors import RetryLater
from switchboard.http import _metrics as metrics
from switchboard.http._breaker import CircuitBreaker
from switchboard.http._budget import (
    DEFAULT_BUCKET,
    Bucket,
    BudgetExhausted,
    Limit,
    LocalBudget,
    RateLimitReader,
)
from switchboard.http._budget import BudgetStore as _Store
from switchboard.http._clock import Clock
from switchboard.http._errors import CircuitOpen, ProviderRejected, ProviderUnavailable
from switchboard.http._errors import from_response as _from_response
from switchboard.http._retry import IDEMPOTENT_METHODS, NOT_SENT, RetryPolicy, retry_after

log = structlog.get_logger("switchboard.http")

Mode = Literal["request", "job"]


class ConnectionClient:
    """Calls one provider. Get it from ``Outbound.client(name)``; do not build it yourself."""

    def __init__(
        self,
        name: str,
        *,
        http: httpx.AsyncClient,
        tokens: TokenProvider | None,
        breaker: CircuitBreaker,
        store: _Store,
        default_limit: Limit | None,
        policy: RetryPolicy,
        clock: Clock,
        rng: random.Random,
        rate_limit_headers: RateLimitReader | None = None,
    ) -> None:
        self.name = name
        self.tokens = tokens
        self.breaker = breaker
        self.policy = policy
        self._http = http
        self._store = store
        self._default_limit = default_limit
        self._clock = clock
        self._rng = rng
        self._read_limits = rate_limit_headers
        self.budgets: dict[str, LocalBudget] = {}

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        bucket: Bucket | None = None,
        mode: Mode = "request",
        idempotent: bool | None = None,
        accept: Collection[int] = (),
        passthrough: bool = False,
        _stream: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send ``method url`` (relative to the connection's base URL) and return a 2xx/3xx
        response, or one whose status is in ``accept`` (e.g. ``accept={404}``).

        Transport errors, 429 and 5xx are retried (waiting exactly ``Retry-After`` when given,
        else exponential backoff with full jitter) up to ``policy.max_attempts``; a transport
        error after the request was sent is retried only when the call is ``idempotent``
        (default: by method). Other statuses raise ``ProviderRejected`` (a ``TerminalError``)
        at once. A 401 with refreshable credentials refreshes them and retries once.

        ``mode="request"``: waits add up to ``policy.request_max_wait`` at most; past it the call
        raises ``ProviderUnavailable`` (a ``TransientError`` carrying ``retry_after``).
        ``mode="job"``: waits up to ``policy.job_max_wait``; past it ``RetryLater(seconds)``.
        ``passthrough=True`` (the proxy): the provider's answer is the caller's, whatever its
        status. A 429/5xx is retried only when the call is repeatable (``idempotent``, default by
        method: a non-idempotent call gets the 429 back and decides itself), and the last answer
        is returned once the attempts are used up; every other status is returned at once, but
        for the one 401 that refreshes the credentials. Waits stay bounded as above.
        ``kwargs`` go to ``httpx.AsyncClient.request`` (``params``, ``json``, ``headers``, …).
        """
        method = method.upper()
        repeatable = idempotent if idempotent is not None else method in IDEMPOTENT_METHODS
        budget = self._budget(bucket)
        max_wait = self.policy.request_max_wait if mode == "request" else self.policy.job_max_wait
        extra_headers = dict(kwargs.pop("headers", None) or {})
        waited = 0.0
        attempt = 0
        reauthorised = False
        while True:
            attempt += 1
            blocked = self.breaker.allow()
            if blocked is not None:
                self._gauge_breaker()
                circuit_open = CircuitOpen(
                    f"{self.name}: circuit open after repeated failures",
                    connection=self.name,
                    retry_after=blocked,
                )
                raise self._defer(mode, circuit_open, blocked)
            verdict: str | None = None  # how this attempt settles the breaker
            try:
                try:
                    token = await self.tokens.token() if self.tokens is not None else None
                except CredentialsUnavailable as exc:
                    wait = exc.retry_after or self.policy.backoff(attempt, self._rng)
                    error = ProviderUnavailable(exc.message, connection=self.name, retry_after=wait)
                    reason = "credentials"
                else:
                    try:
                        waited += await budget.acquire(max_wait - waited)
                    except BudgetExhausted as exc:
                        exhausted = ProviderUnavailable(
                            f"{self.name}: rate budget exhausted",
                            connection=self.name,
                            retry_after=exc.wait,
                        )
                        raise self._defer(mode, exhausted, exc.wait) from None
                    finally:
                        self._gauge_budget(budget)
                    started = time.perf_counter()
                    try:
                        request = self._http.build_request(
                            method, url, headers=extra_headers, **kwargs
                        )
                        if token is not None:
                            authorize(self.tokens, request, token)
                        response = await self._http.send(request, stream=_stream)
                    except httpx.TransportError as exc:
                        verdict = "failure"
                        log.info(
                            "outbound",
                            connection=self.name,
                            method=method,
                            url=str(httpx.URL(url).copy_with(query=None)),
                            error=type(exc).__name__,
                        )
                        metrics.REQUESTS.labels(self.name, "error").inc()
                        wait = self.policy.backoff(attempt, self._rng)
                        error = ProviderUnavailable(
                            f"{self.name}: {type(exc).__name__} calling the provider",
                            connection=self.name,
                            retry_after=wait,
                        )
                        if not repeatable and not isinstance(exc, NOT_SENT):
                            raise error from None  # it may have been applied: not ours to repeat
                        reason = "transport"
                    else:
                        elapsed = time.perf_counter() - started
                        metrics.LATENCY.labels(self.name).observe(elapsed)
                        status = response.status_code
                        # The one line per call (httpx's own logger is silenced: see logs.py);
                        # no query string, which can carry credentials.
                        log.info(
                            "outbound",
                            connection=self.name,
                            method=method,
                            url=str(request.url.copy_with(query=None)),
                            status=status,
                            duration_ms=round(elapsed * 1000, 2),
                        )
                        metrics.REQUESTS.labels(self.name, str(status)).inc()
                        hinted = retry_after(response, self._clock.time())
                        await budget.observe(response, hinted)
                        self._gauge_budget(budget)
                        verdict = "failure" if status >= 500 else "success"
                        if status < 400 or status in accept:
                            return response
                        if passthrough and not self._repeat(
                            status, repeatable, attempt, refresh=not reauthorised
                        ):
                            return response
                        if _stream:  # an error body is small: read it for the error, release
                            await response.aread()
                            await response.aclose()
                        if (
                            status == 401
                            and token is not None
                            and self.tokens is not None
                            and self.tokens.refreshable
                            and not reauthorised
                        ):
                            # An expired token (HubSpot EXPIRED_AUTHENTICATION): refresh once,
                            # retry once, without using an attempt or waiting.
                            await self.tokens.invalidate(token)
                            reauthorised = True
                            attempt -= 1
                            metrics.RETRIES.labels(self.name, "401").inc()
                            continue
                        if status == 429:
                            metrics.RATE_LIMITED.labels(self.name).inc()
                        wait = (
                            hinted
                            if hinted is not None
                            else self.policy.backoff(attempt, self._rng)
                        )
                        mapped = _from_response(self.name, response, retry_after=wait)
                        if isinstance(mapped, ProviderRejected):
                            raise mapped
                        error = mapped
                        reason = str(status)
            finally:
                if verdict == "success":
                    self.breaker.success()
                elif verdict == "failure":
                    self.breaker.failure()
                else:
                    self.breaker.release()
                self._gauge_breaker()
            if attempt >= self.policy.max_attempts:
                raise error
            if waited + wait > max_wait:
                raise self._defer(mode, error, wait)
            metrics.RETRIES.labels(self.name, reason).inc()
            log.info(
                "outbound_retry",
                connection=self.name,
                reason=reason,
                attempt=attempt,
                wait=round(wait, 3),
            )
            await self._clock.sleep(wait)
            waited += wait

    @asynccontextmanager
    async def stream(
        self, method: str, url: str | httpx.URL, **kwargs: Any
    ) -> AsyncIterator[httpx.Response]:
        """Like :meth:`request`, with the same retries, budget and breaker, but the successful
        response's body is not read: iterate ``response.aiter_bytes()`` inside the block, so a
        large document never sits in memory whole.

        A transport or decoding failure while the body is read (a connection reset mid-body, a
        corrupt gzip stream) is the provider's failure like one before the headers: it counts
        against the breaker and arrives as ``ProviderUnavailable``, never as an httpx error.
        """
        response = await self.request(method, url, _stream=True, **kwargs)
        try:
            yield response
        except (httpx.TransportError, httpx.DecodingError) as exc:
            metrics.REQUESTS.labels(self.name, "error").inc()
            self.breaker.failure()
            self._gauge_breaker()
            raise ProviderUnavailable(
                f"{self.name}: {type(exc).__name__} reading the provider's answer",
                connection=self.name,
                retry_after=self.policy.backoff(1, self._rng),
            ) from None
        finally:
            await response.aclose()

    def _repeat(self, status: int, repeatable: bool, attempt: int, *, refresh: bool) -> bool:
        """Whether a passed-through error answer is tried again rather than returned."""
        if status == 401:
            return refresh and self.tokens is not None and self.tokens.refreshable
        retryable = status == 429 or status >= 500
        return retryable and repeatable and attempt < self.policy.max_attempts

    def _budget(self, bucket: Bucket | None) -> LocalBudget:
        name = bucket.name if bucket is not None else DEFAULT_BUCKET
        budget = self.budgets.get(name)
        if budget is None:
            rate = bucket.rate_limit() if bucket is not None else None
            limit = Limit.of(rate) if rate is not None else self._default_limit
            budget = LocalBudget(
                self.name, name, limit, self._store, self._clock, reader=self._read_limits
            )
            self.budgets[name] = budget
        return budget

    def _defer(self, mode: Mode, error: ProviderUnavailable, wait: float) -> Exception:
        if mode == "job":
            return RetryLater(wait, reason=error.message)
        return error

    def _gauge_breaker(self) -> None:
        metrics.BREAKER.labels(self.name).set(metrics.BREAKER_VALUES[self.breaker.state])

    def _gauge_budget(self, budget: LocalBudget) -> None:
        if budget.remaining is not None:
            metrics.BUDGET.labels(self.name, budget.bucket).set(budget.remaining)
