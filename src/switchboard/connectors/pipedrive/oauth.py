"""Pipedrive's OAuth 2.0 endpoints (``docs/providers/pipedrive.md``).

Both live on ``oauth.pipedrive.com``, not on the API host. The token endpoint authenticates the
app with HTTP Basic (``client_id:client_secret``), and its answer carries ``api_domain``: the
company's own API host, which is the connection's ``base_url`` for apps installed that way.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

AUTHORIZE_URL = "https://oauth.pipedrive.com/oauth/authorize"
TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"  # noqa: S105 - an endpoint, not a secret
SCOPES = ("contacts:full",)
"""Persons read and written: Pipedrive's ``contacts:full`` scope (``contacts:read`` reads only)."""


def api_base_of(token: dict[str, Any]) -> str | None:
    """The company's API base URL a token answer names: ``api_domain`` + ``/api`` (requests go
    to ``https://<company>.pipedrive.com/api/v1/…``); None when it names none."""
    domain = token.get("api_domain")
    if not isinstance(domain, str) or not re.fullmatch(r"https?://[^/?#@\s]+/?", domain):
        return None
    return domain.rstrip("/") + "/api"


async def company_of(http: httpx.AsyncClient, base_url: str, token: dict[str, Any]) -> str | None:
    """The company a fresh grant connected: ``GET /v1/users/me`` on the company's API host
    (from the token answer's ``api_domain``, else the connection's base URL)."""
    host = (api_base_of(token) or base_url).rstrip("/")
    response = await http.get(
        f"{host}/v1/users/me", headers={"Authorization": f"Bearer {token.get('access_token')}"}
    )
    if response.status_code != 200:
        return None
    data = response.json().get("data") or {}
    company = data.get("company_id")
    return str(company) if company is not None else None
