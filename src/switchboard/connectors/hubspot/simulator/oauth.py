"""The OAuth token endpoint: refresh-token grants, with rotation of the refresh token."""

from __future__ import annotations

import hmac
import secrets
import uuid
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from switchboard.connectors.hubspot.simulator.app import HubSpotSimulator


async def oauth_token(sim: HubSpotSimulator, request: Request) -> Response:
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}

    def bad(status: str, error: str, message: str) -> Response:
        return JSONResponse(
            {
                "status": status,
                "message": message,
                "correlationId": str(uuid.uuid4()),
                "error": error,
                "error_description": message,
            },
            status_code=400,
        )

    if form.get("grant_type") != "refresh_token":
        return bad("BAD_GRANT_TYPE", "unsupported_grant_type", "grant_type must be refresh_token")
    if form.get("client_id") != sim.client_id:
        return bad("BAD_CLIENT_ID", "invalid_client", "missing or unknown client id")
    if not hmac.compare_digest(form.get("client_secret", ""), sim.client_secret):
        return bad("BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client secret")
    presented = form.get("refresh_token", "")
    with sim.refresh_lock:
        if presented not in sim.refresh_tokens:
            return bad(
                "BAD_REFRESH_TOKEN",
                "invalid_grant",
                "refresh token is invalid, expired or revoked",
            )
        refresh = presented
        if sim.rotate_refresh_tokens:
            # Rotation: the presented token is spent; only the new one works from now on.
            sim.refresh_tokens.discard(presented)
            refresh = "sandbox-refresh-" + secrets.token_urlsafe(24)
            sim.refresh_tokens.add(refresh)
    token = sim.tokens.issue(sim.access_token_ttl, rate_key=f"oauth:{sim.client_id}")
    return JSONResponse(
        {
            "token_type": "bearer",
            "access_token": token.value,
            "refresh_token": refresh,
            "expires_in": int(sim.access_token_ttl),
        }
    )
