from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request, Response
from pydantic import SecretStr

from switchboard.db import Database

if TYPE_CHECKING:
    from switchboard.config import Config, Connection

Receiver = Callable[[Request, str, "Connection", Database, "Config"], Awaitable[Response]]
"""``POST /webhooks/{connection}`` of one connection: the request, its id, its settings."""


@dataclass(frozen=True)
class AppConnections:
    """One integration (an app at the provider) as a provider-level endpoint routes to it."""

    integration: str
    secret: SecretStr | None
    """What signs the app's webhooks (its webhook secret, else its client secret)."""
    connections: dict[str, list[str]] = field(default_factory=dict)
    """Connection ids by the provider's account id (a HubSpot portal id)."""


AppReceiver = Callable[[Request, list[AppConnections], Database, "Config"], Awaitable[Response]]
"""``POST /webhooks/providers/{provider}``: routes one app's deliveries to its connections."""
