"""The configuration: process settings plus the connections file (TOML).

Two sources, validated once at start-up:

* :class:`Settings` — process settings from ``SWITCHBOARD_*`` variables and ``.env``
  (:mod:`switchboard.settings`, with the value types every layer shares).
* :class:`HubConfig` — the connections file (``./switchboard.toml`` or ``$SWITCHBOARD_CONFIG``), in
  which ``${VAR}`` (or ``${VAR:-default}``) is replaced from the environment before validation.
  Each connection is validated by the settings model of its provider, chosen by ``kind``
  (:data:`switchboard.providers.PROVIDERS`).

Any problem raises :class:`ConfigError` whose message names the offending field; the CLI turns it
into exit code 2.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from switchboard.connections.catalog import (
    BY_KIND,
    Catalog,
    Connection,
    Entry,
    IntegrationEntry,
    file_entries,
)
from switchboard.connectors.base import Provider
from switchboard.settings import (
    LOOPBACK_HOSTS,
    NAME,
    ConfigError,
    ConnectionSettings,
    Duration,
    EndUserSettings,
    IntegrationSettings,
    OAuth2Auth,
    Settings,
    Strict,
    describe,
    load_settings,
    process_alive,
)

__all__ = ["Config", "ConfigError", "Connection", "HubConfig", "Settings", "load_config"]

# --- the connections file --------------------------------------------------------------------

_BY_KIND: dict[str, Provider] = BY_KIND


class ServerSection(Strict):
    api_keys: list[SecretStr] = Field(default_factory=list)


class ContactsSection(Strict):
    default_connection: str | None = None


class UsersSection(Strict):
    crm_connection: str | None = None
    create_missing: bool = True
    retry_for: Duration = Field(
        timedelta(hours=24),
        description="How long a user's CRM update is retried (429, 5xx, network) before dead.",
    )
    concurrency: int = Field(
        4,
        ge=1,
        description="CRM batches (of up to 100 user changes each) one worker process runs at "
        "once. Capped so that a rate-limited CRM, whose updates mostly wait for its budget, "
        "leaves the worker's other slots free.",
    )


class ReportsSection(Strict):
    interval: Duration = timedelta(seconds=60)
    dir: Path = Path("reports")
    settle: Duration = Field(
        timedelta(seconds=5),
        description="How long after a window ends its files wait for late-arriving events.",
    )


class EventsSection(Strict):
    allow_private_urls: bool = Field(
        False,
        description="Let event subscriptions deliver to private, loopback and link-local "
        "addresses (a hub whose consumers run on the same network).",
    )


class HubConfig(Strict):
    """The connections file, validated."""

    server: ServerSection = Field(default_factory=ServerSection)
    integrations: dict[str, IntegrationSettings] = Field(default_factory=dict)
    connections: dict[str, Connection] = Field(default_factory=dict)
    contacts: ContactsSection = Field(default_factory=ContactsSection)
    users: UsersSection = Field(default_factory=UsersSection)
    reports: ReportsSection = Field(default_factory=ReportsSection)
    events: EventsSection = Field(default_factory=EventsSection)

    @field_validator("connections", "integrations")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not NAME.fullmatch(name):
                raise ValueError(f"name {name!r}: use lowercase letters, digits, - and _")
        return value

    @model_validator(mode="after")
    def _providers(self) -> HubConfig:
        for name, integration in self.integrations.items():
            if integration.provider not in _BY_KIND:
                known = ", ".join(sorted(_BY_KIND))
                raise ValueError(
                    f"integrations.{name}.provider: unknown {integration.provider!r} ({known})"
                )
        return self

    @model_validator(mode="after")
    def _token_urls(self) -> HubConfig:
        for name, conn in self.connections.items():
            auth = getattr(conn, "auth", None)
            no_default = _BY_KIND[conn.kind].oauth is None
            if isinstance(auth, OAuth2Auth) and auth.token_url is None and no_default:
                raise ValueError(
                    f"connections.{name}.auth.token_url: required "
                    f"({conn.kind} has no default token endpoint)"
                )
        return self

    @model_validator(mode="after")
    def _references(self) -> HubConfig:
        for section, name in (
            ("contacts.default_connection", self.contacts.default_connection),
            ("users.crm_connection", self.users.crm_connection),
        ):
            if name is None:
                continue
            conn = self.connections.get(name)
            if conn is None:
                raise ValueError(f"{section}: no connection named {name!r}")
            if not _BY_KIND[conn.kind].is_crm:
                raise ValueError(f"{section}: connection {name!r} is not a CRM ({conn.kind})")
        return self


class Registration(Strict):
    """What a connections-file entry may say besides its provider's settings: how the
    connection is registered (its immutable ``id``, by default its name, so renaming the entry
    while keeping ``id`` keeps every public contact id)."""

    id: str | None = Field(None, pattern=f"^{NAME.pattern}$")
    integration: str | None = None
    account: str | None = None
    end_user: EndUserSettings | None = None
    tags: list[str] = Field(default_factory=list)


REGISTRATION_KEYS = frozenset(Registration.model_fields)


class Config:
    """Everything the process was configured with: settings, the connections file, and the
    live :class:`~switchboard.connections.catalog.Catalog` of connections (the file's, and with
    a database every stored one)."""

    def __init__(
        self,
        settings: Settings,
        hub: HubConfig,
        source: Path | None,
        *,
        registration: dict[str, Registration] | None = None,
        raw: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.source = source
        self.registration = registration or {}
        self.raw = raw or {}
        """Each file connection's table as written (after ``${VAR}``), what is stored."""
        self.catalog = Catalog(
            self.file_entries(),
            [
                IntegrationEntry(name, i.provider, i.public(), i.secret_values(), file_managed=True)
                for name, i in hub.integrations.items()
            ],
        )

    def file_entries(self) -> list[Entry]:
        """The connections file's connections (what is stored at start), whatever the catalog
        holds since."""
        registration = {k: r.model_dump(exclude_none=True) for k, r in self.registration.items()}
        return file_entries(self.hub.connections, registration, self.raw)

    @property
    def connections(self) -> dict[str, Connection]:
        """Every known connection's settings by id."""
        return self.catalog.settings

    def entry(self, ref: str) -> Entry | None:
        """The connection whose id or alias is ``ref``."""
        return self.catalog.resolve(ref)

    @cached_property
    def api_keys(self) -> tuple[str, ...]:
        keys = [k.get_secret_value() for k in (*self.settings.api_keys, *self.hub.server.api_keys)]
        return tuple(dict.fromkeys(k for k in keys if k))

    def connection(self, ref: str) -> Connection | None:
        """The settings of the connection whose id or alias is ``ref``."""
        entry = self.catalog.resolve(ref)
        return None if entry is None else entry.settings

    def provider(self, ref: str) -> Provider | None:
        """The provider of connection ``ref`` (None: no such connection)."""
        entry = self.catalog.resolve(ref)
        return None if entry is None else entry.provider

    @staticmethod
    def provider_of(conn: ConnectionSettings) -> Provider:
        """The provider of a connection's settings."""
        return _BY_KIND[conn.kind]

    @cached_property
    def allowed_hosts(self) -> tuple[str, ...] | None:
        """The host names requests may be addressed to (None: any). Without an API key the API
        and the console are open to whoever reaches the port, and a web page can reach a
        loopback port under its own name by DNS rebinding: only loopback names are accepted
        then, unless ``SWITCHBOARD_ALLOWED_HOSTS`` says otherwise."""
        configured = [h.strip().lower() for h in self.settings.allowed_hosts if h.strip()]
        if configured:
            return None if "*" in configured else tuple(configured)
        return None if self.api_keys else LOOPBACK_HOSTS


# --- loading ---------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, path: str, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else k, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", env) for i, v in enumerate(node)]
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {name} is not set")

        return _VAR.sub(replace, node)
    return node


def load_config(settings: Settings | None = None, env: dict[str, str] | None = None) -> Config:
    """Read and validate the connections file (missing file: empty configuration)."""
    settings = settings or load_settings()
    env = dict(os.environ) if env is None else env
    path = settings.config
    if not path.exists():
        if "SWITCHBOARD_CONFIG" in env or path != Path("switchboard.toml"):
            raise ConfigError(f"SWITCHBOARD_CONFIG: file {str(path)!r} does not exist")
        return Config(settings, HubConfig(), None)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    data = _interpolate(raw, "", env)
    return _config(settings, data, path, f"{path}: ")


def _config(settings: Settings, data: dict[str, Any], source: Path | None, where: str) -> Config:
    """Validate the file's data: each connection's registration keys apart, the rest by its
    provider's settings model."""
    registration: dict[str, Registration] = {}
    raw: dict[str, dict[str, Any]] = {}
    connections = data.get("connections")
    if isinstance(connections, dict):
        data = {**data, "connections": {}}
        for name, table in connections.items():
            if not isinstance(table, dict):
                data["connections"][name] = table
                continue
            keys = {k: v for k, v in table.items() if k in REGISTRATION_KEYS}
            rest = {k: v for k, v in table.items() if k not in REGISTRATION_KEYS}
            try:
                registration[name] = Registration.model_validate(keys)
            except ValidationError as exc:
                raise ConfigError(where + describe(exc, f"connections.{name}.")) from None
            raw[name] = rest
            data["connections"][name] = rest
    integrations = data.get("integrations")
    if isinstance(integrations, dict):
        for name, reg in registration.items():
            table = integrations.get(reg.integration) if reg.integration else None
            if not isinstance(table, dict):
                continue
            try:
                spec = IntegrationSettings.model_validate(table)
            except ValidationError as exc:
                raise ConfigError(
                    where + describe(exc, f"integrations.{reg.integration}.")
                ) from None
            entry = IntegrationEntry(
                str(reg.integration), spec.provider, spec.public(), spec.secret_values()
            )
            if spec.provider in _BY_KIND:
                data["connections"][name] = entry.defaults_for(raw[name])
    try:
        hub = HubConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(where + describe(exc, "")) from None
    ids = [r.id or n for n, r in registration.items()]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{where}two connections have the same id")
    for name, reg in registration.items():
        if reg.integration is not None and reg.integration not in hub.integrations:
            raise ConfigError(
                f"{where}connections.{name}.integration: no integration named {reg.integration!r}"
            )
    return Config(settings, hub, source, registration=registration, raw=raw)


SANDBOX_URLS_ENV = "SWITCHBOARD_SANDBOX_URLS"
SANDBOX_PORT = 8101
"""First of the zero-configuration simulators' fixed ports (hubspot, nango, acme, events, todo)."""


def is_zero_config(config: Config) -> bool:
    """No connections file and the sandbox allowed: every connection goes to the simulators."""
    return config.source is None and config.settings.sandbox


def sandbox_state_path(settings: Settings) -> Path:
    """Where a zero-configuration ``serve`` records its simulators' URLs for the other commands."""
    return settings.data_dir / ".switchboard" / "sandbox.json"


def default_sandbox_urls(port: int = SANDBOX_PORT) -> dict[str, str]:
    from switchboard.sandbox.server import NAMES

    return {name: f"http://127.0.0.1:{port + i}" for i, name in enumerate(NAMES)}


def running_sandbox(settings: Settings) -> dict[str, str] | None:
    """The simulators' URLs recorded by a zero-configuration ``serve`` that is still running
    (on this machine: the file names its process), else None."""
    try:
        state = json.loads(sandbox_state_path(settings).read_text(encoding="utf-8"))
        pid, urls = int(state["pid"]), state["urls"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(urls, dict) or not process_alive(pid):
        return None
    return {str(k): str(v) for k, v in urls.items()}


def with_zero_config(config: Config, *, defaults: bool = True) -> Config:
    """The connections the zero-configuration ``serve`` uses, for any command: the simulators of
    the running ``serve`` when there is one, else (with ``defaults``) their fixed default ports.
    Unchanged when a connections file is in use or the sandbox is off."""
    if not is_zero_config(config):
        return config
    urls = running_sandbox(config.settings) or (default_sandbox_urls() if defaults else None)
    return config if urls is None else with_sandbox(config, urls)


def with_sandbox(config: Config, urls: dict[str, str]) -> Config:
    """The zero-configuration hub: every connection wired to the simulators at ``urls``."""
    from switchboard.sandbox import zero_config

    data = {**zero_config(urls), "server": config.hub.server.model_dump(), "reports": {}}
    return _config(config.settings, data, None, "")
