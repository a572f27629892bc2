"""Nango simulator: hands out HubSpot access tokens that the HubSpot simulator accepts.

Wire facts: ``shared/providers/NANGO.md``. Both ``GET /connections/{id}`` and the older
``GET /connection/{id}`` answer, with ``Authorization: Bearer <secret key>`` and the required
``provider_config_key`` query parameter.

Like Nango, it refreshes a connection's token when it expires within 15 minutes (or on
``force_refresh=true``) and registers every token it mints in the shared
:class:`~switchboard.connectors.hubspot.simulator.TokenRegistry`.

Control endpoints: ``POST /_sandbox/nango/connections/{id}/break`` makes refreshes fail (424
``invalid_credentials``) until ``POST /_sandbox/nango/connections/{id}/heal``.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from switchboard.connectors.hubspot.simulator.tokens import Token, TokenRegistry
from switchboard.sandbox.faults import Faults, FaultState, RequestLog, SandboxMiddleware

SECRET_KEY = "nango-sandbox"  # noqa: S105 - the sandbox's well-known key
CONNECTION_ID = "sandbox-hubspot"
PROVIDER_CONFIG_KEY = "hubspot"
REFRESH_MARGIN = 15 * 60  # Nango refreshes tokens that expire within 15 minutes


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def nango_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@dataclass
class NangoConnection:
    connection_id: str
    provider_config_key: str
    provider: str = "hubspot"
    id: int = 1
    portal_id: int = 62515
    broken: bool = False
    token: Token | None = None
    refresh_token: str = "nango-refresh-sandbox"  # noqa: S105 - a fake, never a secret
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


class NangoSimulator:
    """A Nango instance holding OAuth connections whose tokens the HubSpot simulator accepts."""

    def __init__(
        self,
        tokens: TokenRegistry,
        *,
        secret_key: str = SECRET_KEY,
        token_ttl: float = 1800,
        connections: dict[str, str] | None = None,
        faults: Faults | None = None,
        seed: int = 0,
    ) -> None:
        """``connections`` maps connection id → provider config key."""
        self.tokens = tokens
        self.secret_key = secret_key
        self.token_ttl = token_ttl
        self._lock = threading.Lock()
        wanted = connections or {CONNECTION_ID: PROVIDER_CONFIG_KEY}
        self.connections = {
            cid: NangoConnection(cid, key, id=i) for i, (cid, key) in enumerate(wanted.items(), 1)
        }
        self.refreshes = 0
        self.faults = FaultState(faults, seed=seed)
        self.log = RequestLog()
        self.app: ASGIApp = SandboxMiddleware(
            self._build(),
            faults=self.faults,
            log=self.log,
            throttled=lambda: nango_error(429, "too_many_requests", "Too many requests"),
            unavailable=lambda: nango_error(503, "service_unavailable", "Service unavailable"),
            error=lambda status: nango_error(status, "server_error", "An internal error occurred"),
        )

    def break_connection(self, connection_id: str, broken: bool = True) -> None:
        """Make the connection's refreshes fail (424) as when its grant was revoked."""
        with self._lock:
            self.connections[connection_id].broken = broken

    def _credentials(self, conn: NangoConnection, *, force: bool) -> Token | None:
        with self._lock:
            token = conn.token
            fresh = (
                token is not None
                and token.expires_at is not None
                and token.expires_at - time.time() > REFRESH_MARGIN
                and self.tokens.get(token.value) is token
            )
            if fresh and not force:
                return token
            if conn.broken:
                return None
            conn.token = self.tokens.issue(
                self.token_ttl, rate_key=f"nango:{conn.connection_id}", prefix="nango-oauth-"
            )
            conn.updated_at = time.time()
            self.refreshes += 1
            return conn.token

    async def get_connection(self, request: Request) -> Response:
        header = request.headers.get("authorization")
        if not header:
            return nango_error(401, "missing_auth_header", "Authentication failed. Missing key.")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip(), self.secret_key):
            return nango_error(401, "invalid_secret_key", "Authentication failed. Invalid key.")
        query = request.query_params
        provider_config_key = query.get("provider_config_key")
        if not provider_config_key:
            return nango_error(
                400, "invalid_query_params", "Missing required query param provider_config_key"
            )
        known_keys = {c.provider_config_key for c in self.connections.values()}
        if provider_config_key not in known_keys:
            return nango_error(
                400,
                "unknown_provider_config",
                f"Integration {provider_config_key!r} does not exist. Create it first.",
            )
        conn = self.connections.get(request.path_params["connection_id"])
        if conn is None or conn.provider_config_key != provider_config_key:
            return nango_error(404, "not_found", "No connection found with this id and key.")
        token = self._credentials(conn, force=query.get("force_refresh") == "true")
        if token is None:
            return nango_error(
                424,
                "invalid_credentials",
                "The refresh token is invalid or revoked; the connection needs re-authorization.",
            )
        assert token.expires_at is not None
        expires_in = max(0, int(token.expires_at - time.time()))
        credentials: dict[str, Any] = {
            "type": "OAUTH2",
            "access_token": token.value,
            "expires_at": _iso(token.expires_at),
            "raw": {
                "access_token": token.value,
                "token_type": "bearer",
                "expires_in": expires_in,
                "refresh_token": conn.refresh_token,
            },
        }
        if query.get("refresh_token") == "true":
            credentials["refresh_token"] = conn.refresh_token
        return JSONResponse(
            {
                "id": conn.id,
                "connection_id": conn.connection_id,
                "provider_config_key": conn.provider_config_key,
                "provider": conn.provider,
                "credentials": credentials,
                "connection_config": {"portalId": conn.portal_id},
                "metadata": {},
                "created_at": _iso(conn.created_at),
                "updated_at": _iso(conn.updated_at),
            }
        )

    async def control_break(self, request: Request) -> Response:
        cid, action = request.path_params["connection_id"], request.path_params["action"]
        if cid not in self.connections or action not in ("break", "heal"):
            return nango_error(404, "not_found", "No connection found with this id.")
        self.break_connection(cid, action == "break")
        return JSONResponse({"connection_id": cid, "broken": self.connections[cid].broken})

    def _build(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/connections/{connection_id}", self.get_connection, methods=["GET"]),
                Route("/connection/{connection_id}", self.get_connection, methods=["GET"]),
                Route(
                    "/_sandbox/nango/connections/{connection_id}/{action:str}",
                    self.control_break,
                    methods=["POST"],
                ),
            ]
        )
