"""A fake HubSpot OAuth server: the token endpoint and one protected resource."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CLIENT_SECRET = "cs-7f3a9b2c41d8"
INITIAL_REFRESH = "rt-initial-5e6f7a8b"

EXPIRED = {
    "status": "error",
    "message": "The OAuth token used to make this call expired 1 second(s) ago.",
    "category": "EXPIRED_AUTHENTICATION",
}
INVALID_GRANT = {
    "error": "invalid_grant",
    "error_description": "refresh token is invalid, expired or revoked",
    "status": "BAD_REFRESH_TOKEN",
    "message": "missing or unknown refresh token",
}


class OAuthServer:
    """Issues ``at-N`` / ``rt-N`` (rotating refresh tokens); accepts only the newest access
    token; ``expire()`` makes it refuse the current one as HubSpot does."""

    def __init__(self, *, expires_in: int = 1800, delay: float = 0.05) -> None:
        self.expires_in = expires_in
        self.delay = delay
        self.refreshes: list[dict[str, str]] = []
        self.resource_calls = 0
        self.valid_refresh = {INITIAL_REFRESH}
        self.access: str | None = None
        self.always_401 = False
        self.app = Starlette(
            routes=[
                Route("/oauth/v1/token", self.token, methods=["POST"]),
                Route("/crm/v3/objects/contacts", self.contacts, methods=["GET"]),
            ]
        )

    def expire(self) -> None:
        self.access = None

    def revoke_all(self) -> None:
        self.valid_refresh.clear()

    async def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        self.refreshes.append(form)
        await asyncio.sleep(self.delay)  # a slow token endpoint widens any race
        if form.get("grant_type") != "refresh_token" or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        if form.get("refresh_token") not in self.valid_refresh:
            return JSONResponse(INVALID_GRANT, status_code=400)
        n = len(self.refreshes)
        self.access = f"at-{n}-a1b2c3d4"
        self.valid_refresh = {f"rt-{n}-e5f6a7b8"}
        body: dict[str, Any] = {
            "token_type": "bearer",
            "access_token": self.access,
            "refresh_token": f"rt-{n}-e5f6a7b8",
            "expires_in": self.expires_in,
        }
        return JSONResponse(body)

    async def contacts(self, request: Request) -> Response:
        self.resource_calls += 1
        presented = request.headers.get("authorization", "")
        if self.always_401 or self.access is None or presented != f"Bearer {self.access}":
            return JSONResponse(EXPIRED, status_code=401)
        return JSONResponse({"results": [], "token_ok": True})


def oauth_connection(base_url: str, refresh_token: str = INITIAL_REFRESH) -> dict[str, Any]:
    return {
        "crm": {
            "kind": "hubspot",
            "base_url": base_url,
            "auth": {
                "type": "oauth2",
                "client_id": "client-1",
                "client_secret": CLIENT_SECRET,
                "refresh_token": refresh_token,
            },
        }
    }
