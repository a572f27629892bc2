"""Client credentials (ACME): POST id/secret as JSON, cache the JWT, renew 60 s early."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from switchboard.credentials import CredentialsError
from switchboard.http.testing import FakeClock
from tests.http.fakes import Outbounds

Serve = Callable[[Any], str]
CLIENT_SECRET = "acme-secret-4d5e6f7a"


class Acme:
    def __init__(self, clock: FakeClock, *, expires_in: bool = True) -> None:
        self.clock = clock
        self.expires_in = expires_in
        self.tokens: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/token", self.token, methods=["POST"]),
                Route("/v1/acme/contacts", self.contacts),
            ]
        )

    async def token(self, request: Request) -> Response:
        body = json.loads(await request.body())
        if body != {"client_id": "acme-client", "client_secret": CLIENT_SECRET}:
            return JSONResponse({"detail": "invalid client credentials"}, status_code=401)
        exp = int(self.clock.time()) + 3600
        token = jwt.encode({"iss": "acme", "exp": exp, "n": len(self.tokens)}, "k" * 32)
        self.tokens.append(token)
        answer: dict[str, Any] = {"access_token": token}
        if self.expires_in:
            answer["expires_in"] = 3600
        return JSONResponse(answer)

    async def contacts(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.tokens[-1]}":
            return JSONResponse({"detail": "invalid token"}, status_code=401)
        return JSONResponse({"data": [], "next_page": None})


def acme_conn(url: str, secret: str = CLIENT_SECRET) -> dict[str, Any]:
    return {
        "acme": {
            "kind": "mapped_crm",
            "base_url": url,
            "auth": {
                "type": "client_credentials",
                "token_url": "/token",
                "client_id": "acme-client",
                "client_secret": secret,
            },
            "paths": {"list": "/v1/acme/contacts", "item": "/x/{id}", "create": "/x"},
            "fields": {"email": "acme_email"},
        }
    }


@pytest.mark.parametrize("expires_in", [True, False], ids=["expires_in", "jwt-exp"])
async def test_jwt_is_cached_and_renewed_a_minute_before_expiry(
    asgi_server: Serve, local: Outbounds, expires_in: bool
) -> None:
    clock = FakeClock()
    acme = Acme(clock, expires_in=expires_in)
    client = local.make(acme_conn(asgi_server(acme.app)), None, clock=clock).client("acme")

    for _ in range(3):
        assert (await client.request("GET", "/v1/acme/contacts")).status_code == 200
    clock.advance(3530)
    await client.request("GET", "/v1/acme/contacts")
    assert len(acme.tokens) == 1
    clock.advance(15)  # 55 s before expiry
    await client.request("GET", "/v1/acme/contacts")
    assert len(acme.tokens) == 2


async def test_wrong_client_secret_is_a_clear_error(asgi_server: Serve, local: Outbounds) -> None:
    acme = Acme(FakeClock())
    outbound = local.make(acme_conn(asgi_server(acme.app), "wrong-secret-000"), None)
    with pytest.raises(CredentialsError, match=r"acme: token endpoint refused \(401\)"):
        await outbound.client("acme").request("GET", "/v1/acme/contacts")
    assert acme.tokens == []
