"""The connections this process knows, kept in step with the database.

A connection is one end customer's account on an *integration* (a provider plus the app's
credentials). Both live in the database (``integrations``, ``connections``); those declared in
the connections file are stored there at start, marked file-managed. Every process holds a
:class:`Catalog` — the connections' validated settings by immutable id, and their aliases — and
reloads it when the ``connections`` row of ``store_versions`` moves (bumped in every transaction
that changes a connection or an integration), so a connection created, changed, paused or
deleted through the API reaches every process without a restart. Listeners (the outbound clients,
the scheduler) are told which ids changed.

Without a database (a ``Config`` built from a file in a test or a CLI check) the catalog holds
just the file's connections, each under its name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field, SecretStr, TypeAdapter, ValidationError

from switchboard.connectors.base import Provider
from switchboard.providers import PROVIDERS
from switchboard.settings import ConnectionSettings, mask_urls

if TYPE_CHECKING:
    Connection = ConnectionSettings
else:
    Connection = Annotated[
        Union[tuple(p.settings for p in PROVIDERS)],  # noqa: UP007 - built from the list
        Field(discriminator="kind"),
    ]
"""One connection's settings: the settings model of its provider, chosen by ``kind``."""

BY_KIND: dict[str, Provider] = {p.kind: p for p in PROVIDERS}
_ADAPTER: TypeAdapter[Connection] = TypeAdapter(Connection)

STATUSES = ("ok", "needs_reauth", "paused", "error")
ACTIVE = frozenset({"ok", "needs_reauth", "error"})
"""Statuses whose connection is scheduled and called (``paused`` is neither)."""


class InvalidConnection(ValueError):
    """A connection's settings do not validate; the message names the field."""


def validate(raw: Mapping[str, Any], prefix: str = "") -> Connection:
    """The provider settings model of ``raw`` (chosen by its ``kind``)."""
    try:
        return _ADAPTER.validate_python(dict(raw))
    except ValidationError as exc:
        # The union's tag (the kind) leads each location: "hubspot.auth" → "auth".
        kind = str(raw.get("kind"))
        lines = [
            prefix
            + ".".join(str(p) for p in e["loc"][1 if e["loc"][:1] == (kind,) else 0 :])
            + f": {e['msg']}"
            for e in exc.errors()
        ]
        raise InvalidConnection("; ".join(lines)) from None


@dataclass(frozen=True)
class EndUser:
    id: str | None = None
    email: str | None = None
    organisation: str | None = None


@dataclass(frozen=True)
class IntegrationEntry:
    """An integration as loaded: ``settings`` (client id, scopes, URL overrides, the base URL
    and other defaults of its connections) and ``secrets`` (client secret, webhook secret)."""

    name: str
    provider: str
    settings: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    file_managed: bool = False

    def defaults_for(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """A connection's settings with what its integration supplies filled in: its kind, the
        base URL and defaults, the webhook secret (HubSpot signs with the app's secret), and
        an OAuth2 connection's client id, secret and token URL."""
        model = BY_KIND[self.provider].settings
        merged: dict[str, Any] = {"kind": self.provider, **self.settings.get("defaults", {})}
        if self.settings.get("base_url") and "base_url" in model.model_fields:
            merged["base_url"] = self.settings["base_url"]
        webhook_secret = self.secrets.get("webhook_secret") or self.secrets.get("client_secret")
        if webhook_secret and "webhook_secret" in model.model_fields:
            merged["webhook_secret"] = webhook_secret
        merged.update({k: v for k, v in raw.items() if k != "auth"})
        auth = raw.get("auth")
        if isinstance(auth, Mapping):
            auth = dict(auth)
            if auth.get("type") == "oauth2":
                auth.setdefault("client_id", self.settings.get("client_id"))
                auth.setdefault("client_secret", self.secrets.get("client_secret"))
                if self.settings.get("token_url"):
                    auth.setdefault("token_url", self.settings["token_url"])
            merged["auth"] = auth
        elif auth is not None:
            merged["auth"] = auth
        return merged


@dataclass(frozen=True)
class Entry:
    """One connection as this process knows it."""

    id: str
    alias: str
    settings: Connection
    integration: str | None = None
    account: str | None = None
    end_user: EndUser = EndUser()
    tags: tuple[str, ...] = ()
    status: str = "ok"
    status_reason: str | None = None
    file_managed: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None
    fingerprint: str = ""
    stamp: tuple[Any, ...] = ()
    """When its row and its integration were last changed (a reload reuses an unchanged entry)."""

    @property
    def provider(self) -> Provider:
        return BY_KIND[self.settings.kind]

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def revealed(settings: ConnectionSettings) -> dict[str, Any]:
    """Settings as plain data that validates back to the same model, secrets included (for a
    connection given as a model rather than as the file's table: it is stored encrypted)."""

    def plain(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, timedelta):
            return value.total_seconds()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        return str(value)

    data: dict[str, Any] = plain(settings.model_dump(mode="python", exclude_none=True))
    return data


def masked_settings(settings: ConnectionSettings) -> dict[str, Any]:
    """A connection's settings for display: secrets masked by their models, URL passwords and
    query values by :func:`~switchboard.settings.mask_urls`."""
    data: dict[str, Any] = mask_urls(settings.model_dump(mode="json"))
    return data


def fingerprint(raw: Any) -> str:
    """A digest of what a connection was built from (to tell which ones changed on reload)."""
    text = json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


Listener = Callable[[set[str]], None]
"""Told the ids of connections added, changed or removed by a reload."""


class Catalog:
    """Connections by immutable id, and their aliases; see the module docstring."""

    def __init__(
        self,
        entries: Iterable[Entry] = (),
        integrations: Iterable[IntegrationEntry] = (),
        version: int = -1,
    ) -> None:
        self.version = version
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self.integrations: dict[str, IntegrationEntry] = {}
        self._listeners: list[Listener] = []
        self._set(list(entries), list(integrations))

    def _set(self, entries: list[Entry], integrations: list[IntegrationEntry]) -> set[str]:
        before = self._entries
        self._entries = {e.id: e for e in sorted(entries, key=lambda e: e.alias)}
        self._aliases = {e.alias: e.id for e in entries}
        self.integrations = {i.name: i for i in integrations}
        changed = {
            i
            for i in before.keys() | self._entries.keys()
            if (a := before.get(i)) is None
            or (b := self._entries.get(i)) is None
            or (a.fingerprint, a.status, a.alias) != (b.fingerprint, b.status, b.alias)
        }
        return changed

    def replace(
        self, entries: list[Entry], integrations: list[IntegrationEntry], version: int
    ) -> set[str]:
        """Swap in a reloaded set; tells the listeners which ids changed and returns them."""
        changed = self._set(entries, integrations)
        self.version = version
        if changed:
            for listener in list(self._listeners):
                listener(changed)
        return changed

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after each reload that changed something; returns the undo."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def resolve(self, ref: str) -> Entry | None:
        """The connection whose id or alias is ``ref`` (the id wins)."""
        entry = self._entries.get(ref)
        if entry is None:
            key = self._aliases.get(ref)
            entry = self._entries.get(key) if key is not None else None
        return entry

    def get(self, connection_id: str) -> Entry | None:
        return self._entries.get(connection_id)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    @property
    def settings(self) -> dict[str, Connection]:
        """Every connection's settings by id (paused ones included)."""
        return {i: e.settings for i, e in self._entries.items()}

    def active(self) -> dict[str, Connection]:
        """The settings of the connections that are scheduled and called (not paused)."""
        return {i: e.settings for i, e in self._entries.items() if e.active}


def file_entries(
    connections: Mapping[str, Connection],
    registration: Mapping[str, Mapping[str, Any]],
    raw: Mapping[str, Mapping[str, Any]],
) -> list[Entry]:
    """The file's connections as entries: id from ``id =`` or the name, the name as alias."""
    entries = []
    for alias, conn in connections.items():
        reg = registration.get(alias, {})
        user = reg.get("end_user") or {}
        entries.append(
            Entry(
                id=str(reg.get("id") or alias),
                alias=alias,
                settings=conn,
                integration=reg.get("integration"),
                account=reg.get("account"),
                end_user=EndUser(user.get("id"), user.get("email"), user.get("organisation")),
                tags=tuple(reg.get("tags") or ()),
                fingerprint=fingerprint(raw.get(alias, {})),
            )
        )
    return entries
