"""The portal's credentials: the sandbox's well-known app secrets and the tokens it accepts."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Literal

# Public on purpose: the sandbox's well-known credentials.
PRIVATE_APP_TOKEN = "pat-sandbox"  # noqa: S105
CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105
REFRESH_TOKEN = "sandbox-refresh-token"  # noqa: S105


@dataclass(frozen=True)
class Installation:
    """An app installed in a portal: what an OAuth token (and its refresh token) belongs to."""

    client_id: str
    hub_id: int
    scopes: tuple[str, ...]
    user: str = "sandbox-user@example.com"
    user_id: int = 2_620_001

    @property
    def hub_domain(self) -> str:
        return f"portal-{self.hub_id}.sandbox.hubspot.com"


@dataclass
class Token:
    """An access token the simulator accepts."""

    value: str
    kind: Literal["private_app", "oauth"]
    expires_at: float | None = None  # epoch seconds
    rate_key: str = ""  # whose 10-second budget it spends (per app, not per token)
    installation: Installation | None = None  # who granted it (OAuth tokens the app was issued)

    def __post_init__(self) -> None:
        self.rate_key = self.rate_key or self.value


class TokenRegistry:
    """Access tokens a HubSpot simulator accepts; shared with the Nango simulator (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}

    def add(self, token: Token) -> Token:
        with self._lock:
            self._tokens[token.value] = token
        return token

    def add_private_app(self, value: str) -> Token:
        return self.add(Token(value, "private_app"))

    def issue(
        self,
        ttl: float,
        *,
        rate_key: str,
        prefix: str = "sandbox-oauth-",
        installation: Installation | None = None,
    ) -> Token:
        """Mint a fresh OAuth access token valid for ``ttl`` seconds."""
        value = prefix + secrets.token_urlsafe(24)
        return self.add(Token(value, "oauth", time.time() + ttl, rate_key, installation))

    def get(self, value: str) -> Token | None:
        with self._lock:
            return self._tokens.get(value)

    def revoke(self, value: str) -> None:
        with self._lock:
            self._tokens.pop(value, None)

    def expire(self, value: str | None = None) -> int:
        """Expire one token, or every OAuth token; returns how many."""
        past = time.time() - 1
        with self._lock:
            if value is not None:
                targets = [t for t in (self._tokens.get(value),) if t is not None]
            else:
                targets = [t for t in self._tokens.values() if t.kind == "oauth"]
            for token in targets:
                token.expires_at = past
            return len(targets)
