"""Process settings (environment, ``SWITCHBOARD_*``) and the value types every layer shares.

The low half of the configuration: :class:`Settings`, durations and rate limits, the auth models
and the base of every connection's settings model. Providers define their connection settings on
these (``connectors/<provider>/settings.py``); :mod:`switchboard.config` assembles them into the
connections file. Nothing here imports a provider.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ConfigError(Exception):
    """The configuration is invalid."""


# --- small value types -----------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> timedelta:
    """``"30s"``, ``"5m"``, ``"1h"``, ``"500ms"``, ``"2d"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 1h, 500ms)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class RateLimit(BaseModel):
    """``"10/60s"``: at most ``requests`` requests per ``per`` window."""

    model_config = ConfigDict(frozen=True)

    requests: int = Field(gt=0)
    per: timedelta

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            count, sep, window = value.partition("/")
            if not sep or not count.strip().isdigit():
                raise ValueError(f"not a rate limit: {value!r} (use e.g. 10/60s)")
            return {"requests": int(count), "per": parse_duration(window or "1s")}
        return value

    def __str__(self) -> str:
        return f"{self.requests}/{self.per.total_seconds():g}s"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


# --- process settings ------------------------------------------------------------------------


class Settings(BaseSettings):
    """Process settings. Every field is ``SWITCHBOARD_<NAME>`` in the environment or ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_", env_file=".env", extra="ignore", validate_default=True
    )

    database_url: str = Field(
        "sqlite+aiosqlite:///./switchboard.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://…",
    )
    database_schema: str | None = Field(
        None, description="PostgreSQL only: schema to use (created if missing); default public."
    )
    database_pool_size: int = Field(10, ge=1, description="Connections per process (PostgreSQL).")
    config: Path = Field(Path("switchboard.toml"), description="Path of the connections file.")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Comma-separated API keys (added to [server] api_keys)."
    )
    secret_key: SecretStr | None = Field(
        None, description="Key that encrypts stored credentials; generated into data_dir if unset."
    )
    secret_key_previous: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Earlier secret keys, comma-separated: they still decrypt, never encrypt "
        "(key rotation; `switchboard credentials rekey` re-encrypts under the current key).",
    )
    data_dir: Path = Field(
        Path("."),
        description="Where generated files live: the secret key, and a zero-config serve's "
        "simulator URLs (.switchboard/sandbox.json).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a TTY, JSON lines otherwise."
    )
    access_log: bool = Field(True, description="Log one line per HTTP request.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the server answers to (any port), comma-separated; "
        "`*.example.com` matches subdomains, `*` any host. Unset: loopback names only when no API "
        "key is configured (DNS rebinding cannot reach the open API), any host otherwise.",
    )
    feed_max_bytes: int = Field(
        1 << 30,
        ge=1024,
        description="Largest feed document, decompressed (a larger one fails the run).",
    )
    feed_max_download_bytes: int = Field(
        1 << 30,
        ge=1024,
        description="Largest feed answer as sent on the wire (compressed or not).",
    )

    sandbox: bool = Field(
        True,
        description="With no connections file, `serve` starts the built-in provider simulators "
        "(ports 8101-8107), wires every connection to them and adds demo data (--no-demo: none).",
    )

    # Durable jobs (switchboard.jobs).
    embedded_runtime: bool = Field(
        True, description="Run jobs and schedules inside `serve` (off: API-only process)."
    )
    worker_concurrency: int = Field(16, ge=1, description="Jobs run at once per process.")
    job_poll_interval: float = Field(0.1, gt=0, description="Seconds between claims when idle.")
    job_lease_seconds: float = Field(30.0, gt=0, description="Lease of a running job.")
    job_max_attempts: int = Field(10, ge=1, description="Default attempts before a job is dead.")
    job_backoff_base: float = Field(1.0, ge=0, description="First retry wait (seconds).")
    job_backoff_cap: float = Field(3600.0, ge=0, description="Longest retry wait (seconds).")
    job_retention: Duration = Field(
        timedelta(days=1), description="How long succeeded jobs are kept."
    )
    job_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra modules of job handlers: each one's register(registry) adds them.",
    )
    shutdown_grace_seconds: float = Field(
        20.0, ge=0, description="How long running jobs may finish at shutdown."
    )

    # Inbound webhook log (switchboard.webhooks).
    webhook_retention: Duration = Field(
        timedelta(days=30), description="How long webhook deliveries are kept."
    )
    webhook_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Most bytes of bodies and answers the webhook log keeps (rejected deliveries "
        "are pruned first, oldest first; 0: no size bound).",
    )
    webhook_rejected_body_bytes: int = Field(
        1024, ge=0, description="Body prefix kept of a delivery that was not applied."
    )
    webhook_rejected_rate: Annotated[RateLimit, NoDecode] = Field(
        RateLimit(requests=30, per=timedelta(minutes=1)),
        description="Rejected deliveries logged per connection and client address (the rest are "
        "answered, not logged).",
    )
    webhook_rejected_connection_rate: Annotated[RateLimit, NoDecode] = Field(
        RateLimit(requests=300, per=timedelta(minutes=1)),
        description="Rejected deliveries logged per connection, whatever the address.",
    )

    # Outbound change events (switchboard.changes).
    events_allow_private_urls: bool = Field(
        False,
        description="Let event subscriptions deliver to private, loopback and link-local "
        "addresses (also `[events] allow_private_urls` in the connections file).",
    )
    events_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        description="Seconds before each delivery attempt of an event, comma-separated (the "
        "first is the first attempt): Svix's schedule by default, 8 attempts over ~27 hours.",
    )
    events_timeout: float = Field(15.0, gt=0, description="Seconds one delivery may take.")
    events_retention: Duration = Field(
        timedelta(days=30), description="How long change events and delivery attempts are kept."
    )
    events_disable_after: Duration = Field(
        timedelta(days=5),
        description="A subscription whose deliveries fail for this long without a success is "
        "disabled.",
    )
    events_secret_overlap: Duration = Field(
        timedelta(hours=24),
        description="How long a rotated subscription secret still signs deliveries.",
    )

    # Outbound HTTP (switchboard.http).
    public_url: str | None = Field(
        None,
        description="The hub's address as browsers reach it (connect links and the OAuth "
        "callback); default: the address each request came to.",
    )
    connections_poll_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds between checks for connections changed by another process.",
    )
    http_max_attempts: int = Field(4, ge=1, description="Tries of one outbound call.")
    http_request_max_wait: float = Field(
        10.0, ge=0, description="Longest total retry wait of a call made for an API request."
    )
    http_job_max_wait: float = Field(
        60.0, ge=0, description="Longest total retry wait inside a job (longer: RetryLater)."
    )
    http_breaker_failures: int = Field(
        5, ge=1, description="Consecutive failures (transport, 5xx) that open the breaker."
    )
    http_breaker_cooldown: float = Field(
        30.0, gt=0, description="Seconds an open breaker waits before one probe call."
    )

    _split_keys = field_validator(
        "api_keys",
        "job_modules",
        "secret_key_previous",
        "allowed_hosts",
        "events_retry_schedule",
        mode="before",
    )(_split_csv)

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///file.db or postgresql+asyncpg://user@host/db")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


# --- shared by every connection's settings --------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenAuth(Strict):
    """A static bearer token (e.g. a HubSpot private-app token)."""

    type: Literal["token"]
    token: SecretStr


class OAuth2Auth(Strict):
    """OAuth2 refresh-token grant."""

    type: Literal["oauth2"]
    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr
    token_url: str | None = Field(
        None, description="Default: the provider's token endpoint on its base_url"
    )


class NangoAuth(Strict):
    """Credentials fetched from a Nango connection."""

    type: Literal["nango"]
    base_url: str = "https://api.nango.dev"
    secret_key: SecretStr
    connection_id: str
    provider_config_key: str


class ClientCredentialsAuth(Strict):
    """OAuth2 client-credentials grant returning a JWT."""

    type: Literal["client_credentials"]
    token_url: str
    client_id: str
    client_secret: SecretStr


class ApiKeyAuth(Strict):
    """A static API key sent in a header (``header = "X-Api-Key"``, optionally after a
    ``prefix`` such as ``"Token "``) or in the query (``query_param = "api_key"``)."""

    type: Literal["api_key"]
    key: SecretStr
    header: str | None = None
    query_param: str | None = None
    prefix: str = ""

    @model_validator(mode="after")
    def _one_place(self) -> ApiKeyAuth:
        if (self.header is None) == (self.query_param is None):
            raise ValueError("set exactly one of header or query_param")
        return self


class BasicAuth(Strict):
    """HTTP basic authentication."""

    type: Literal["basic"]
    username: str
    password: SecretStr = SecretStr("")


Auth = Annotated[
    TokenAuth | OAuth2Auth | NangoAuth | ClientCredentialsAuth | ApiKeyAuth | BasicAuth,
    Field(discriminator="type"),
]


NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""What a connection's or an integration's name (and a connection's id) may be."""


class EndUserSettings(Strict):
    """Who a connection belongs to, in the product's terms."""

    id: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    organisation: str | None = Field(None, max_length=200)


class IntegrationSettings(Strict):
    """An integration: a provider plus the app's credentials, shared by its connections."""

    provider: str
    client_id: str | None = Field(None, max_length=500)
    client_secret: SecretStr | None = None
    webhook_secret: SecretStr | None = Field(
        None, description="Signs the provider's webhooks (default: the client secret)."
    )
    scopes: list[str] | None = Field(None, description="Default: the provider's.")
    authorize_url: str | None = Field(None, description="Default: the provider's.")
    token_url: str | None = Field(None, description="Default: the provider's.")
    base_url: str | None = Field(None, description="The API base URL of its connections.")
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="Settings every connection of it starts from."
    )

    def public(self) -> dict[str, Any]:
        """Everything but the secrets (stored in clear, shown by the API)."""
        return self.model_dump(
            exclude={"provider", "client_secret", "webhook_secret"}, exclude_none=True
        )

    def secret_values(self) -> dict[str, str]:
        pairs = (("client_secret", self.client_secret), ("webhook_secret", self.webhook_secret))
        return {k: v.get_secret_value() for k, v in pairs if v is not None}


class ConnectionSettings(Strict):
    """What every connection's settings model has: the kind of its provider."""

    kind: str


class ConnectionBase(ConnectionSettings):
    """The settings of a connection that calls its provider (timeouts, rate limit)."""

    connect_timeout: Duration = Field(timedelta(seconds=5), description="TCP connect timeout.")
    read_timeout: Duration = Field(timedelta(seconds=30), description="Response read timeout.")
    rate_limit: RateLimit | None = Field(None, description='e.g. "100/10s"')


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
MASK = "***"


def describe(error: ValidationError, prefix: str) -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"] if not str(p).startswith("function-"))
        # Discriminated unions add the tag to the location (connections.x.hubspot.auth); keep it
        # readable but precise.
        lines.append(f"{prefix}{loc}: {item['msg']}")
    return "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("invalid setting " + describe(exc, "SWITCHBOARD_")) from None


def process_alive(pid: int) -> bool:
    """Whether a process of this machine with that id exists (another user's counts too)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def mask_url(url: str) -> str:
    """``url`` with its password and every query value replaced by ``***`` (either may be a
    credential: ``postgresql://user:pw@host``, ``…/feed?key=…``), for showing configuration."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: show nothing of it
        return MASK
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        userinfo = f"{user}:{MASK}" if colon else user
    query = "&".join(
        f"{name}={MASK}" if sep else name
        for name, sep, _ in (item.partition("=") for item in parts.query.split("&") if item)
    )
    # Assembled by hand: urlunsplit drops the empty authority of sqlite:///file.db.
    head = url[: len(parts.scheme) + 3] if url[len(parts.scheme) :].startswith("://") else ""
    return f"{head}{userinfo}{at}{hostport}{parts.path}{'?' if query else ''}{query}"


def mask_urls(node: Any) -> Any:
    """:func:`mask_url` applied to every URL string in a JSON-like value."""
    if isinstance(node, dict):
        return {k: mask_urls(v) for k, v in node.items()}
    if isinstance(node, list):
        return [mask_urls(v) for v in node]
    if isinstance(node, str) and "://" in node:
        return mask_url(node)
    return node


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
