"""What a provider contributes to the hub (:class:`Provider`); the list is
:data:`switchboard.providers.PROVIDERS`.

Generic layers reach a connection's provider through ``config.provider(name)`` and use its
parts; none of them names a provider."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from switchboard.settings import ConnectionSettings

if TYPE_CHECKING:
    import httpx

    from switchboard.connectors.crm import CrmContacts
    from switchboard.http import ConnectionClient
    from switchboard.http._budget import RateLimitReader
    from switchboard.syncs.registry import Syncer
    from switchboard.webhooks.receivers import AppReceiver, Receiver

    AccountOf = Callable[[httpx.AsyncClient, str, dict[str, Any]], Awaitable[str | None]]


@dataclass(frozen=True)
class OAuthEndpoints:
    """The provider's OAuth2 endpoints (an ``auth.token_url`` in the connections file wins)."""

    token_path: str
    """The token endpoint, relative to the connection's ``base_url`` (or absolute)."""
    client_auth: Literal["body", "basic"] = "body"
    """How the token endpoint takes the app's credentials: form fields, or HTTP Basic."""
    authorize_url: str | None = None
    """Where a user grants access (the authorization-code flow of ``/connect``)."""
    scopes: tuple[str, ...] = ()
    """The scopes the hub's calls need."""
    account: AccountOf | None = None
    """Which account a fresh grant connected (a HubSpot portal id), given an HTTP client, the
    API base URL and the token endpoint's answer: it routes provider-level webhooks and tells
    a re-authorisation from a new connection."""
    api_base: Callable[[dict[str, Any]], str | None] | None = None
    """The connection's API base URL when the token endpoint's answer names one (Pipedrive's
    ``api_domain``: each company has its own host); the connect flow stores it."""


@dataclass(frozen=True)
class Provider:
    """One external system: the kind of its connections and what it brings."""

    kind: str
    """``kind = "…"`` of its connections in the connections file."""
    settings: type[ConnectionSettings]
    """The pydantic model of a connection's settings (``kind: Literal[…]`` discriminates)."""
    crm: Callable[[ConnectionClient, Any, Literal["request", "job"]], CrmContacts] | None = None
    """The contacts client of a connection, when the provider is a CRM."""
    syncer: Syncer | None = None
    """How its connections pull data into the hub (None: they do not sync)."""
    receiver: Receiver | None = None
    """``POST /webhooks/{connection}`` for its connections: signature check, event parsing."""
    app_receiver: AppReceiver | None = None
    """``POST /webhooks/providers/{kind}``: one endpoint for an app's deliveries about every
    account, routed to the connections by account (None: per-connection endpoints only)."""
    rate_limit_headers: Callable[[Any], RateLimitReader] | None = None
    """The reader of a connection's rate-limit headers for the budget, given the connection's
    settings (None: the standard ``X-RateLimit-*``)."""
    oauth: OAuthEndpoints | None = None
    """Its OAuth2 endpoints, for ``auth.type = "oauth2"``."""
    outbound: bool = True
    """Whether its connections call it (False: an inbound-only webhook source)."""
    task_events: bool = False
    """Whether its connections deliver task events (the scheduled task report runs when one
    such connection exists)."""

    @property
    def is_crm(self) -> bool:
        return self.crm is not None
