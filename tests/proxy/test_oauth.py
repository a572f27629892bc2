"""A proxied call on an OAuth2 connection: the hub's access token is injected, and a 401 for an
expired one refreshes it and retries, unseen by the caller (on both databases, where the tokens
are stored)."""

from __future__ import annotations

import httpx
import pytest

from switchboard.config import HubConfig
from switchboard.connectors.hubspot.simulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    HubSpotSimulator,
)
from tests.proxy.conftest import Wire

CONTACTS = "/crm/v3/objects/contacts"


@pytest.fixture
def hub_config(hubspot_url: str) -> HubConfig:
    return HubConfig.model_validate(
        {
            "connections": {
                "portal": {
                    "kind": "hubspot",
                    "base_url": hubspot_url,
                    "auth": {
                        "type": "oauth2",
                        "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET,
                        "refresh_token": REFRESH_TOKEN,
                    },
                }
            }
        }
    )


async def test_an_expired_token_is_refreshed_and_the_call_retried(
    client: httpx.AsyncClient, hubspot: HubSpotSimulator, wire: Wire
) -> None:
    contact = hubspot.ui_create({"email": "ada@example.com"})
    url = f"/proxy/portal{CONTACTS}/{contact['id']}"
    first = await client.get(url, headers={"Authorization": "Bearer caller"})
    assert first.status_code == 200, first.text
    first_token = wire.api_calls()[-1].headers["authorization"]
    assert first_token.startswith("Bearer ") and first_token != "Bearer caller"

    assert hubspot.tokens.expire() == 1  # HubSpot now says EXPIRED_AUTHENTICATION for it
    wire.seen.clear()
    second = await client.get(url)

    assert second.status_code == 200, second.text
    assert second.json()["id"] == contact["id"]
    assert [a.path for a in wire.seen] == [
        f"{CONTACTS}/{contact['id']}",  # 401: expired
        "/oauth/v1/token",
        f"{CONTACTS}/{contact['id']}",
    ]
    calls = [e["status"] for e in hubspot.log.entries() if e["path"].startswith(CONTACTS)]
    assert calls == [200, 401, 200]
    refreshed = wire.seen[-1].headers["authorization"]
    assert refreshed != first_token
