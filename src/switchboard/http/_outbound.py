"""The per-process owner of every connection's client, credentials, budget and breaker."""

from __future__ import annotations

import asyncio
import random
import ssl
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import httpx
from sqlalchemy.exc import SQLAlchemyError

from switchboard.credentials import (
    CredentialStatus,
    SecretBox,
    load_secret_box,
    token_provider,
)
from switchboard.db import Database
from switchboard.http import _metrics as metrics
from switchboard.http._breaker import BreakerState, CircuitBreaker
from switchboard.http._budget import BudgetStore, DatabaseStore, Limit, MemoryStore
from switchboard.http._client import ConnectionClient
from switchboard.http._clock import Clock, SystemClock
from switchboard.http._retry import RetryPolicy
from switchboard.settings import ConnectionBase

if TYPE_CHECKING:
    from switchboard.config import Config


class _Closeable(Protocol):
    async def aclose(self) -> None: ...


_C = TypeVar("_C", bound=_Closeable)

_by_database: weakref.WeakKeyDictionary[Database, Outbound] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ConnectionStatus:
    """A connection's outbound health, as this process sees it (no secrets)."""

    name: str
    breaker: BreakerState
    consecutive_failures: int
    budgets: dict[str, int | None] = field(default_factory=dict)
    credentials: CredentialStatus | None = None


class Outbound:
    """Create once per process (the app's lifespan, the worker) and close with :meth:`aclose`.

    With a database, rate budgets are shared with every other process on it and OAuth2 tokens
    are stored there (encrypted); without one, budgets are per process and ``oauth2`` is
    unavailable. ``clock`` and ``rng`` are the test seams (``switchboard.http.testing``).
    """

    def __init__(
        self,
        config: Config,
        db: Database | None = None,
        *,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        breaker_failures: int | None = None,
        breaker_cooldown: float | None = None,
    ) -> None:
        s = config.settings
        self.config = config
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.policy = policy or RetryPolicy(
            max_attempts=s.http_max_attempts,
            request_max_wait=s.http_request_max_wait,
            job_max_wait=s.http_job_max_wait,
        )
        self._rng = rng or random.Random()  # jitter, not secrecy
        self._breaker_failures = breaker_failures or s.http_breaker_failures
        self._breaker_cooldown = (
            breaker_cooldown if breaker_cooldown is not None else s.http_breaker_cooldown
        )
        self._store: BudgetStore = (
            DatabaseStore(db, self.clock) if db is not None else MemoryStore(self.clock)
        )
        self._box: SecretBox | None = None
        # One TLS context for every connection's client: each context loads the CA store
        # (about 0.8 MB), which at 1,000 connections was most of a worker's memory.
        self._tls: ssl.SSLContext | None = None
        self._clients: dict[str, ConnectionClient] = {}
        self._built_from: dict[str, str] = {}  # the settings' fingerprint each client was built on
        self._http: list[httpx.AsyncClient] = []
        self._plain: dict[str, _Closeable] = {}
        if db is not None:
            _by_database[db] = self
        self._retired: list[httpx.AsyncClient] = []
        self._http_of: dict[str, httpx.AsyncClient] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self._unsubscribe = config.catalog.subscribe(self._forget)

    def _forget(self, changed: set[str]) -> None:
        """Connections changed, added or removed elsewhere: their clients are rebuilt from the
        new settings on next use (credentials swapped, base URL, limits). An old HTTP client is
        closed once a call still using it has had time to finish (its read timeout)."""
        for name in changed:
            built = self._built_from.get(name)
            if built and built == self._fingerprint(name):
                # Its status or alias changed, not its settings: the client stays, and with it
                # its breaker and tokens (an ``error`` status must not close an open breaker).
                continue
            self._built_from.pop(name, None)
            self._clients.pop(name, None)
            http = self._http_of.pop(name, None)
            if http is None or http not in self._http:
                continue
            self._http.remove(http)
            self._retired.append(http)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): closed at aclose()
                continue
            grace = http.timeout.read or 30.0
            loop.call_later(grace + 1.0, self._close_retired, http)

    def _close_retired(self, http: httpx.AsyncClient) -> None:
        if http in self._retired:
            self._retired.remove(http)
            task = asyncio.ensure_future(http.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @classmethod
    def for_database(cls, db: Database) -> Outbound | None:
        """The ``Outbound`` this process created on ``db`` (for readiness checks)."""
        return _by_database.get(db)

    @property
    def names(self) -> list[str]:
        """Connections that call out (every kind but inbound-only webhook sources)."""
        return sorted(
            name
            for name, conn in self.config.connections.items()
            if self.config.provider_of(conn).outbound
        )

    def client(self, name: str) -> ConnectionClient:
        """The client of connection ``name`` (created on first use)."""
        existing = self._clients.get(name)
        if existing is not None:
            return existing
        conn = self.config.connection(name)
        if conn is None:
            raise KeyError(f"no connection named {name!r}")
        if not self.config.provider_of(conn).outbound or not isinstance(conn, ConnectionBase):
            raise ValueError(f"connection {name!r} ({conn.kind}) makes no outbound calls")
        client = self._build(name, conn)
        self._clients[name] = client
        self._built_from[name] = self._fingerprint(name)
        return client

    def _fingerprint(self, name: str) -> str:
        entry = self.config.catalog.get(name)
        return entry.fingerprint if entry is not None else ""

    def plain_client(self, purpose: str, factory: Callable[[], _C]) -> _C:
        """A client for calls that belong to no connection (outbound webhooks to URLs the API
        was given), made by ``factory`` on first use: one per ``purpose`` (its caller knows its
        type), closed (``aclose()``) with the others. The caller brings the client, so it can
        be one that connects to addresses it checked itself (SSRF) and this layer stays
        ignorant of what it is for."""
        client = self._plain.get(purpose)
        if client is None:
            made = self._plain[purpose] = factory()
            return made
        return cast(_C, client)  # one purpose, one factory: the type it made

    async def status(self, name: str) -> ConnectionStatus:
        client = self.client(name)
        credentials = await client.tokens.status() if client.tokens is not None else None
        metrics.BREAKER.labels(name).set(metrics.BREAKER_VALUES[client.breaker.state])
        return ConnectionStatus(
            name=name,
            breaker=client.breaker.state,
            consecutive_failures=client.breaker.consecutive_failures,
            budgets={b.bucket: b.remaining for b in client.budgets.values()},
            credentials=credentials,
        )

    async def aclose(self) -> None:
        self._unsubscribe()
        for http in [*self._http, *self._retired]:
            await http.aclose()
        for plain in self._plain.values():
            await plain.aclose()
        self._http.clear()
        self._retired.clear()
        self._clients.clear()
        self._plain.clear()

    def _build(self, name: str, conn: ConnectionBase) -> ConnectionClient:
        provider = self.config.provider_of(conn)
        connect = conn.connect_timeout.total_seconds()
        read = conn.read_timeout.total_seconds()
        base_url = getattr(conn, "base_url", "") or ""
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        http = httpx.AsyncClient(
            base_url=base_url,
            verify=self._tls,
            timeout=httpx.Timeout(connect=connect, read=read, write=read, pool=connect),
            follow_redirects=False,
        )
        self._http.append(http)
        self._http_of[name] = http
        auth = getattr(conn, "auth", None)
        tokens = None
        if auth is not None:
            if auth.type == "oauth2" and self.db is not None and self._box is None:
                self._box = load_secret_box(self.config.settings)
            tokens = token_provider(
                name,
                auth,
                base_url=base_url,
                http=http,
                db=self.db,
                box=self._box,
                clock=self.clock,
                # Longer than one token call can take, so a lease never lapses mid-refresh.
                lease_seconds=connect + read + 10.0,
                token_path=provider.oauth.token_path if provider.oauth is not None else None,
                token_client_auth=provider.oauth.client_auth if provider.oauth else "body",
            )
        return ConnectionClient(
            name,
            http=http,
            tokens=tokens,
            breaker=CircuitBreaker(
                failure_threshold=self._breaker_failures,
                cooldown=self._breaker_cooldown,
                clock=self.clock,
            ),
            store=self._store,
            default_limit=Limit.of(conn.rate_limit) if conn.rate_limit is not None else None,
            policy=self.policy,
            clock=self.clock,
            rng=self._rng,
            rate_limit_headers=(
                provider.rate_limit_headers(conn) if provider.rate_limit_headers else None
            ),
        )


def readiness_check(db: Database) -> Callable[[], Awaitable[tuple[Any, str | None]]]:
    """A ``/ready`` check reporting each connection's breaker and credential state.

    It never fails readiness: reads are served from the local store, so taking the process out
    of the load balancer because a provider is down or a token was revoked would turn a partial
    outage into a total one. The state is there for operators and alerts."""

    async def check() -> tuple[Any, str | None]:
        outbound = Outbound.for_database(db)
        if outbound is None:
            return "not started", None
        report: dict[str, Any] = {}
        for name in outbound.names:
            try:
                status = await outbound.status(name)
            except (SQLAlchemyError, OSError):
                report[name] = {"breaker": "unknown", "credentials": "unknown"}
                continue
            creds = status.credentials
            report[name] = {
                "breaker": status.breaker,
                "credentials": creds.state if creds is not None else None,
            }
        return report, None

    return check
