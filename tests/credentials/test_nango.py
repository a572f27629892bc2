"""Nango: token reuse within its cache bound, expiry, and clear errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from switchboard.credentials import CredentialsError, NeedsReauthorization
from switchboard.errors import TerminalError
from switchboard.http.testing import FakeClock
from tests.http.fakes import Outbounds

Serve = Callable[[Any], str]
SECRET_KEY = "nango-sk-0a1b2c3d4e5f"


class Nango:
    def __init__(self, clock: FakeClock, *, lifetime: float = 3600, status: int = 200) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.status = status
        self.calls: list[dict[str, str]] = []
        self.app = Starlette(
            routes=[
                Route("/connections/{cid}", self.connection),
                Route("/crm/v3/objects/contacts", self.contacts),
            ]
        )

    async def connection(self, request: Request) -> Response:
        self.calls.append(dict(request.query_params))
        if request.headers.get("authorization") != f"Bearer {SECRET_KEY}":
            return JSONResponse(
                {"error": {"code": "invalid_secret_key", "message": "bad key"}}, status_code=401
            )
        if self.status != 200:
            codes = {404: "not_found", 424: "invalid_credentials"}
            error = {"code": codes.get(self.status, "x"), "message": "from nango"}
            return JSONResponse({"error": error}, status_code=self.status)
        n = len(self.calls)
        expires = datetime.fromtimestamp(self.clock.time() + self.lifetime, UTC)
        return JSONResponse(
            {
                "connection_id": request.path_params["cid"],
                "provider_config_key": request.query_params["provider_config_key"],
                "credentials": {
                    "type": "OAUTH2",
                    "access_token": f"nango-at-{n}-xyz789",
                    "expires_at": expires.isoformat().replace("+00:00", "Z"),
                },
            }
        )

    async def contacts(self, request: Request) -> Response:
        return JSONResponse({"auth": request.headers.get("authorization")})


def nango_conn(url: str, secret_key: str = SECRET_KEY) -> dict[str, Any]:
    return {
        "crm": {
            "kind": "hubspot",
            "base_url": url,
            "auth": {
                "type": "nango",
                "base_url": url,
                "secret_key": secret_key,
                "connection_id": "user-42",
                "provider_config_key": "hubspot",
            },
        }
    }


async def test_token_is_reused_for_at_most_five_minutes(
    asgi_server: Serve, local: Outbounds
) -> None:
    clock = FakeClock()
    nango = Nango(clock, lifetime=3600)
    crm = local.make(nango_conn(asgi_server(nango.app)), None, clock=clock).client("crm")

    first = await crm.request("GET", "/crm/v3/objects/contacts")
    clock.advance(290)
    second = await crm.request("GET", "/crm/v3/objects/contacts")
    assert first.json() == second.json() == {"auth": "Bearer nango-at-1-xyz789"}
    assert nango.calls == [{"provider_config_key": "hubspot"}]

    clock.advance(20)
    third = await crm.request("GET", "/crm/v3/objects/contacts")
    assert third.json() == {"auth": "Bearer nango-at-2-xyz789"}
    assert len(nango.calls) == 2


async def test_token_is_not_used_up_to_its_expiry(asgi_server: Serve, local: Outbounds) -> None:
    clock = FakeClock()
    nango = Nango(clock, lifetime=90)  # expires before the 5-minute cache bound
    crm = local.make(nango_conn(asgi_server(nango.app)), None, clock=clock).client("crm")

    await crm.request("GET", "/crm/v3/objects/contacts")
    clock.advance(20)
    await crm.request("GET", "/crm/v3/objects/contacts")
    assert len(nango.calls) == 1
    clock.advance(20)  # within a minute of expires_at: fetch a fresh one
    await crm.request("GET", "/crm/v3/objects/contacts")
    assert len(nango.calls) == 2


@pytest.mark.parametrize(
    ("status", "secret", "error", "message"),
    [
        (200, "wrong-key-123456", CredentialsError, "Nango rejected the secret key"),
        (404, SECRET_KEY, CredentialsError, "Nango has no connection 'user-42'"),
        (424, SECRET_KEY, NeedsReauthorization, "re-authorise it in Nango"),
    ],
)
async def test_nango_errors_are_clear_connection_errors(
    asgi_server: Serve,
    local: Outbounds,
    status: int,
    secret: str,
    error: type[Exception],
    message: str,
) -> None:
    clock = FakeClock()
    nango = Nango(clock, status=status)
    outbound = local.make(nango_conn(asgi_server(nango.app), secret), None, clock=clock)

    with pytest.raises(error, match=message) as caught:
        await outbound.client("crm").request("GET", "/crm/v3/objects/contacts")

    assert isinstance(caught.value, TerminalError)
    state = (await outbound.status("crm")).credentials
    assert state is not None
    assert state.state == ("needs_reauth" if status == 424 else "error")


async def test_refresh_exhausted_in_nango_is_not_hammered(
    asgi_server: Serve, local: Outbounds
) -> None:
    clock = FakeClock()
    nango = Nango(clock, status=424)
    crm = local.make(nango_conn(asgi_server(nango.app)), None, clock=clock).client("crm")
    for _ in range(3):
        with pytest.raises(NeedsReauthorization):
            await crm.request("GET", "/crm/v3/objects/contacts")
    assert len(nango.calls) == 1
    clock.advance(61)
    nango.status = 200
    assert (await crm.request("GET", "/crm/v3/objects/contacts")).status_code == 200
