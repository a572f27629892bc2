"""HubSpot's OAuth: which portal a grant connected (``docs/providers/hubspot.md``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx


async def portal_of(http: httpx.AsyncClient, base_url: str, token: dict[str, Any]) -> str | None:
    """The portal (``hub_id``) of a fresh grant: in the token answer since August 2025, else
    from the access token's metadata (``GET /oauth/v1/access-tokens/{token}``)."""
    if token.get("hub_id") is not None:
        return str(token["hub_id"])
    access = str(token.get("access_token") or "")
    if not access:
        return None
    response = await http.get(f"{base_url.rstrip('/')}/oauth/v1/access-tokens/{quote(access)}")
    if response.status_code != 200:
        return None
    hub_id = response.json().get("hub_id")
    return str(hub_id) if hub_id is not None else None
