"""Nango simulator: tokens the HubSpot simulator accepts, and Nango's error bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from switchboard.connectors.hubspot.simulator import HubSpotSimulator, TokenRegistry
from switchboard.sandbox import NangoSimulator

KEY = {"Authorization": "Bearer nango-sandbox"}
PARAMS = {"provider_config_key": "hubspot"}


@pytest.fixture
def pair(asgi_server: Callable[[Any], str]) -> tuple[NangoSimulator, str, str]:
    tokens = TokenRegistry()
    hubspot = HubSpotSimulator(tokens=tokens, contacts=2)
    nango = NangoSimulator(tokens)
    return nango, asgi_server(nango.app), asgi_server(hubspot.app)


@pytest.fixture
async def http(pair: tuple[NangoSimulator, str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=pair[1], headers=KEY) as c:
        yield c


async def test_connection_token_works_at_hubspot(
    http: httpx.AsyncClient, pair: tuple[NangoSimulator, str, str]
) -> None:
    response = await http.get("/connections/sandbox-hubspot", params=PARAMS)

    assert response.status_code == 200
    body = response.json()
    assert body["connection_id"] == "sandbox-hubspot"
    assert body["provider_config_key"] == "hubspot"
    credentials = body["credentials"]
    assert credentials["type"] == "OAUTH2"
    expires_at = datetime.fromisoformat(credentials["expires_at"].replace("Z", "+00:00"))
    assert expires_at > datetime.now(UTC)
    assert "refresh_token" not in credentials
    contacts = httpx.get(
        f"{pair[2]}/crm/v3/objects/contacts",
        headers={"Authorization": f"Bearer {credentials['access_token']}"},
    )
    assert contacts.status_code == 200
    assert len(contacts.json()["results"]) == 2


async def test_token_is_reused_until_near_expiry_or_forced(
    http: httpx.AsyncClient, pair: tuple[NangoSimulator, str, str]
) -> None:
    async def token(**params: str) -> str:
        r = await http.get("/connections/sandbox-hubspot", params={**PARAMS, **params})
        return str(r.json()["credentials"]["access_token"])

    first = await token()
    assert await token() == first
    old_path = await http.get("/connection/sandbox-hubspot", params=PARAMS)
    assert old_path.json()["credentials"]["access_token"] == first
    forced = await token(force_refresh="true")
    assert forced != first
    with_refresh = await http.get(
        "/connections/sandbox-hubspot", params={**PARAMS, "refresh_token": "true"}
    )
    assert with_refresh.json()["credentials"]["refresh_token"]
    assert pair[0].refreshes == 2


@pytest.mark.parametrize(
    ("path", "params", "headers", "status", "code"),
    [
        ("/connections/sandbox-hubspot", PARAMS, {"Authorization": ""}, 401, "missing_auth_header"),
        (
            "/connections/sandbox-hubspot",
            PARAMS,
            {"Authorization": "Bearer x"},
            401,
            "invalid_secret_key",
        ),
        ("/connections/sandbox-hubspot", {}, KEY, 400, "invalid_query_params"),
        (
            "/connections/sandbox-hubspot",
            {"provider_config_key": "sf"},
            KEY,
            400,
            "unknown_provider_config",
        ),
        ("/connections/nope", PARAMS, KEY, 404, "not_found"),
    ],
)
async def test_errors(
    http: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = await http.get(path, params=params, headers=headers)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


async def test_broken_connection_answers_424(http: httpx.AsyncClient) -> None:
    assert (await http.post("/_sandbox/nango/connections/sandbox-hubspot/break")).status_code == 200

    broken = await http.get("/connections/sandbox-hubspot", params=PARAMS)

    assert broken.status_code == 424
    assert broken.json()["error"]["code"] == "invalid_credentials"
    await http.post("/_sandbox/nango/connections/sandbox-hubspot/heal")
    assert (await http.get("/connections/sandbox-hubspot", params=PARAMS)).status_code == 200
