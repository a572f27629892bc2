"""OAuth: the install (consent) page, the token endpoint (authorization-code and refresh-token
grants, refresh tokens rotated) and the access-token metadata endpoint.

The grant's rules (single-use codes, expiry, PKCE S256, allowed redirect URIs) are
:class:`switchboard.sandbox.oauth.AuthorizationServer`'s; this module speaks HubSpot's wire:
the app's credentials in the form body, errors as ``{"status": "BAD_…", "error": …}``.
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchboard.connectors.hubspot.simulator.errors import HubSpotError
from switchboard.connectors.hubspot.simulator.tokens import Installation
from switchboard.sandbox.oauth import Consent, GrantRefused

if TYPE_CHECKING:
    from switchboard.connectors.hubspot.simulator.app import HubSpotSimulator

# (status, message) per refused exchange. HubSpot documents BAD_AUTH_CODE's "missing or unknown
# auth code"; the others are assumed (``docs/providers/hubspot.md``).
REFUSED = {
    "unknown_code": ("BAD_AUTH_CODE", "missing or unknown auth code"),
    "used_code": ("BAD_AUTH_CODE", "missing or unknown auth code"),
    "expired_code": ("BAD_AUTH_CODE", "auth code is expired"),
    "client_mismatch": ("BAD_AUTH_CODE", "auth code was issued to another client"),
    "redirect_mismatch": ("BAD_REDIRECT_URI", "redirect_uri does not match the auth code's"),
    "verifier": ("BAD_CODE_VERIFIER", "code_verifier does not match the code_challenge"),
}


def requested_scopes(params: Mapping[str, str]) -> tuple[str, ...]:
    """``scope`` and ``optional_scope`` (space-separated): the simulated account has every
    optional scope, so all are granted."""
    words = f"{params.get('scope', '')} {params.get('optional_scope', '')}".split()
    return tuple(dict.fromkeys(words))


def consent(sim: HubSpotSimulator) -> Consent:
    return Consent(
        provider="HubSpot",
        account_label="HubSpot account (portal id)",
        default_account=lambda: sim.webhooks.settings.portal_id,
        scopes=requested_scopes,
    )


async def authorize(sim: HubSpotSimulator, request: Request) -> Response:
    return await sim.oauth.authorize(request, consent(sim))


def _bad(status: str, error: str, message: str) -> Response:
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


async def oauth_token(sim: HubSpotSimulator, request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    grant_type = form.get("grant_type")
    if grant_type not in ("authorization_code", "refresh_token"):
        return _bad(
            "BAD_GRANT_TYPE",
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        )
    client_id = form.get("client_id", "")
    secret = sim.clients.get(client_id)
    if secret is None:
        return _bad("BAD_CLIENT_ID", "invalid_client", "missing or unknown client id")
    if not hmac.compare_digest(form.get("client_secret", ""), secret):
        return _bad("BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client secret")
    if grant_type == "authorization_code":
        try:
            grant = sim.oauth.redeem(
                code=form.get("code", ""),
                client_id=client_id,
                redirect_uri=form.get("redirect_uri", ""),
                verifier=form.get("code_verifier", ""),
            )
        except GrantRefused as refused:
            status, message = REFUSED[refused.reason]
            return _bad(status, "invalid_grant", message)
        installation = Installation(client_id, grant.account_id, grant.scopes)
        refresh = "sandbox-refresh-" + secrets.token_urlsafe(24)
        with sim.refresh_lock:
            sim.refresh_tokens[refresh] = installation
    else:
        presented = form.get("refresh_token", "")
        with sim.refresh_lock:
            found = sim.refresh_tokens.get(presented)
            if found is None or found.client_id != client_id:
                return _bad(
                    "BAD_REFRESH_TOKEN",
                    "invalid_grant",
                    "refresh token is invalid, expired or revoked",
                )
            installation, refresh = found, presented
            if sim.rotate_refresh_tokens:
                # Rotation: the presented token is spent; only the new one works from now on.
                del sim.refresh_tokens[presented]
                refresh = "sandbox-refresh-" + secrets.token_urlsafe(24)
                sim.refresh_tokens[refresh] = installation
    # HubSpot's budget for OAuth apps is per app and installing account.
    token = sim.tokens.issue(
        sim.access_token_ttl,
        rate_key=f"oauth:{client_id}:{installation.hub_id}",
        installation=installation,
    )
    return JSONResponse(
        {
            "token_type": "bearer",
            "access_token": token.value,
            "refresh_token": refresh,
            "expires_in": int(sim.access_token_ttl),
            # Added to both grants' answers in August 2025 (HubSpot's changelog).
            "hub_id": installation.hub_id,
            "scopes": list(installation.scopes),
        }
    )


async def access_token_info(sim: HubSpotSimulator, request: Request) -> Response:
    """``GET /oauth/v1/access-tokens/{token}``: who granted an OAuth access token."""
    token = sim.tokens.get(request.path_params["token"])
    if token is None or token.installation is None:
        return HubSpotError(404, "OBJECT_NOT_FOUND", "Access token not found").response()
    info = token.installation
    left = 0 if token.expires_at is None else max(0, int(token.expires_at - time.time()))
    return JSONResponse(
        {
            "token": token.value,
            "user": info.user,
            "hub_domain": info.hub_domain,
            "scopes": list(info.scopes),
            "hub_id": info.hub_id,
            "app_id": sim.webhooks.settings.app_id,
            "expires_in": left,
            "user_id": info.user_id,
            "token_type": "access",
        }
    )
