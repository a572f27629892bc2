"""``ANY /proxy/{connection}/{path}`` black-box through HTTP, against the HubSpot simulator on a
real port (and, for what HubSpot never sends, a small provider of our own on a real port)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from switchboard.config import HubConfig, Settings
from switchboard.connectors.hubspot.simulator import PRIVATE_APP_TOKEN, HubSpotSimulator
from switchboard.sandbox import zero_config
from tests.proxy.conftest import Wire
from tests.support import API_KEY, Backend, make_settings

CONTACTS = "/crm/v3/objects/contacts"
BIG = 8 * 1024 * 1024
CHUNK = 64 * 1024


class Provider:
    """A provider answering what HubSpot never does: hop-by-hop, cookie and auth headers, and
    an 8 MB body that stops after its first MB until the test releases it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.released = threading.Event()
        self.sent = 0
        self.app = Starlette(
            routes=[
                Route("/api/echo", self.echo, methods=["GET", "POST"]),
                Route("/api/big", self.big, methods=["GET"]),
                Route("/api/cut", self.cut, methods=["GET"]),
            ]
        )

    async def echo(self, request: Request) -> Response:
        self.seen.append(dict(request.headers))
        return Response(
            b"echo",
            headers={
                "Connection": "X-Internal",
                "X-Internal": "1",
                "Keep-Alive": "timeout=5",
                "Set-Cookie": "session=provider",
                "WWW-Authenticate": 'Bearer realm="provider"',
                "Proxy-Authenticate": "Basic",
                "X-Kept": "yes",
                "X-Request-ID": "provider-id",
            },
            media_type="text/plain",
        )

    async def big(self, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for index in range(BIG // CHUNK):
                if self.sent == 1024 * 1024:
                    await asyncio.to_thread(self.released.wait, 10)
                self.sent += CHUNK
                yield bytes([index % 256]) * CHUNK

        return StreamingResponse(
            body(),
            headers={"Content-Length": str(BIG)},
            media_type="application/octet-stream",
        )

    async def cut(self, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"x" * CHUNK
            raise ConnectionResetError("the provider went away mid-body")

        return StreamingResponse(body(), headers={"Content-Length": str(BIG)})


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
def hub_config(
    hubspot_url: str, provider: Provider, asgi_server: Callable[[Any], str]
) -> HubConfig:
    data = zero_config({"hubspot": hubspot_url})
    connections = data["connections"]
    connections["todo"] = {"kind": "todo_webhooks"}
    connections["other"] = {
        "kind": "mapped_crm",
        "base_url": asgi_server(provider.app) + "/api",
        "auth": {"type": "token", "token": "other-token"},
        "paths": {"list": "/c", "item": "/c/{id}", "create": "/c"},
        "fields": {"email": "email"},
    }
    connections["dead"] = {
        "kind": "hubspot",
        "base_url": "http://127.0.0.1:9",  # discard: nothing listens
        "auth": {"type": "token", "token": "t"},
    }
    return HubConfig.model_validate(data)


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    # Provider waits above 0.2 s become 503 + Retry-After at once (the 429s here say 0 s).
    return make_settings(backend, tmp_path, api_keys=[API_KEY], http_request_max_wait=0.2)


async def test_get_with_query_passes_through_with_the_connections_token(
    client: httpx.AsyncClient, hubspot: HubSpotSimulator, wire: Wire
) -> None:
    contact = hubspot.ui_create({"email": "ada@example.com", "firstname": "Ada"})
    caller = {"Authorization": "Bearer caller-token", "Cookie": "hub=1", "X-Trace": "t-1"}

    r = await client.get(
        f"/proxy/hubspot{CONTACTS}/{contact['id']}",
        params={"properties": "email,firstname", "archived": "false"},
        headers=caller,
    )

    assert r.status_code == 200, r.text
    assert r.json()["properties"]["firstname"] == "Ada"
    assert "x-hubspot-ratelimit-remaining" in r.headers  # the provider's headers come back
    [arrival] = wire.api_calls()
    assert arrival.path == f"{CONTACTS}/{contact['id']}"
    assert arrival.query == b"properties=email%2Cfirstname&archived=false"
    assert arrival.headers["authorization"] == f"Bearer {PRIVATE_APP_TOKEN}"
    assert arrival.headers["x-trace"] == "t-1"
    for private in ("cookie", "x-api-key"):
        assert private not in arrival.headers
    assert [e["query"] for e in hubspot.log.entries()] == [arrival.query.decode()]


async def test_post_body_is_forwarded_and_provider_errors_pass_through(
    client: httpx.AsyncClient, hubspot: HubSpotSimulator
) -> None:
    body = {"properties": {"email": "grace@example.com", "lastname": "Hopper"}}

    created = await client.post(f"/proxy/hubspot{CONTACTS}", json=body)
    again = await client.post(f"/proxy/hubspot{CONTACTS}", json=body)
    missing = await client.get(f"/proxy/hubspot{CONTACTS}/999999")

    assert created.status_code == 201, created.text
    stored = hubspot.store.get(int(created.json()["id"]))
    assert stored is not None and stored.value("lastname") == "Hopper"
    # HubSpot's answers, not the hub's envelope: its 409 names the existing contact.
    assert again.status_code == 409
    assert again.json()["category"] == "CONFLICT"
    assert created.json()["id"] in again.json()["message"]
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"
    assert "detail" not in missing.json()


async def test_a_429_is_retried_for_get_and_for_post_only_when_the_caller_opts_in(
    client: httpx.AsyncClient, hubspot: HubSpotSimulator, wire: Wire
) -> None:
    contact = hubspot.ui_create({"email": "ada@example.com"})
    wire.throttle = 1
    read = await client.get(f"/proxy/hubspot{CONTACTS}/{contact['id']}")
    assert read.status_code == 200
    assert [a.method for a in wire.api_calls()] == ["GET", "GET"]

    wire.seen.clear()
    wire.throttle = 1
    body = {"properties": {"email": "new@example.com"}}
    refused = await client.post(f"/proxy/hubspot{CONTACTS}", json=body)
    assert refused.status_code == 429  # HubSpot's 429, for the caller to decide
    assert refused.json()["errorType"] == "RATE_LIMIT"
    assert refused.headers["retry-after"] == "0"
    assert [a.method for a in wire.api_calls()] == ["POST"]
    assert hubspot.store.find("new@example.com", "email") is None

    wire.seen.clear()
    wire.throttle = 1
    opted = await client.post(
        f"/proxy/hubspot{CONTACTS}", json=body, headers={"X-Switchboard-Retry": "true"}
    )
    assert opted.status_code == 201, opted.text
    assert [a.method for a in wire.api_calls()] == ["POST", "POST"]
    assert not [h for h in wire.seen[-1].headers if h.startswith("x-switchboard")]


async def test_a_wait_longer_than_an_api_call_may_wait_is_the_hubs_503(
    client: httpx.AsyncClient, hubspot: HubSpotSimulator, wire: Wire
) -> None:
    contact = hubspot.ui_create({"email": "ada@example.com"})
    wire.throttle, wire.retry_after = 1, "30"

    r = await client.get(f"/proxy/hubspot{CONTACTS}/{contact['id']}")

    assert r.status_code == 503
    assert r.headers["retry-after"] == "30"
    assert r.json()["detail"].startswith("hubspot: provider answered 429")
    assert len(wire.api_calls()) == 1


async def test_head_is_forwarded_without_a_body(
    client: httpx.AsyncClient, hubspot: HubSpotSimulator, wire: Wire
) -> None:
    contact = hubspot.ui_create({"email": "ada@example.com"})

    r = await client.head(f"/proxy/hubspot{CONTACTS}/{contact['id']}")

    assert r.status_code == 200 and r.content == b""
    assert [(a.method, a.path) for a in wire.seen] == [("HEAD", f"{CONTACTS}/{contact['id']}")]


async def test_an_unknown_connection_is_404_and_an_inbound_only_one_422(
    client: httpx.AsyncClient, wire: Wire
) -> None:
    unknown = await client.get(f"/proxy/nope{CONTACTS}")
    inbound = await client.post("/proxy/todo/anything", content=b"{}")

    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "No connection named 'nope'"}
    assert inbound.status_code == 422
    assert inbound.json()["detail"][0]["loc"] == ["path", "connection"]
    assert wire.seen == []


async def test_an_unreachable_provider_is_the_hubs_503_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/proxy/dead/crm/v3/objects/contacts")

    assert r.status_code == 503
    assert r.json()["detail"].startswith("dead: ConnectError")
    assert int(r.headers["retry-after"]) >= 0


async def test_repeated_failures_open_the_connections_breaker(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    details = []
    for _ in range(settings.http_breaker_failures + 1):
        r = await client.get("/proxy/dead/crm/v3/objects/contacts")
        assert r.status_code == 503 and "retry-after" in r.headers
        details.append(r.json()["detail"])

    assert details[-1] == "dead: circuit open after repeated failures"
    status = (await client.get("/connections/dead")).json()
    assert status["outbound"]["breaker"] == "open"


async def test_calls_count_in_the_connections_outbound_metrics(
    client: httpx.AsyncClient, hubspot: HubSpotSimulator
) -> None:
    labels = {"connection": "hubspot", "status": "404"}
    before = REGISTRY.get_sample_value("switchboard_outbound_requests_total", labels) or 0.0

    await client.get(f"/proxy/hubspot{CONTACTS}/424242")

    after = REGISTRY.get_sample_value("switchboard_outbound_requests_total", labels)
    assert after == before + 1


async def test_hop_by_hop_credentials_and_cookies_are_stripped_both_ways(
    client: httpx.AsyncClient, provider: Provider
) -> None:
    r = await client.get(
        "/proxy/other/echo",
        headers={
            "Connection": "keep-alive, X-Private",
            "X-Private": "secret",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Upgrade": "h2c",
            "Proxy-Authorization": "Basic eDp5",
            "Authorization": "Bearer caller",
            "Cookie": "hub=1",
            "X-Switchboard-Debug": "1",
            "X-Custom": "kept",
        },
    )

    assert r.status_code == 200 and r.content == b"echo"
    [sent] = provider.seen
    for name in (
        "x-private",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "cookie",
        "x-switchboard-debug",
        "x-api-key",
    ):
        assert name not in sent, name
    assert sent["authorization"] == "Bearer other-token"
    assert sent["x-custom"] == "kept"
    assert sent["host"].startswith("127.0.0.1:")  # the provider's, not the hub's
    for name in (
        "x-internal",
        "keep-alive",
        "set-cookie",
        "www-authenticate",
        "proxy-authenticate",
    ):
        assert name not in r.headers, name
    assert r.headers["x-kept"] == "yes"
    [request_id] = r.headers.get_list("x-request-id")  # the hub's, once
    assert request_id != "provider-id"


async def test_a_large_body_streams_through_without_being_buffered(
    hub_url: str, provider: Provider
) -> None:
    expected = hashlib.sha256()
    for index in range(BIG // CHUNK):
        expected.update(bytes([index % 256]) * CHUNK)
    digest = hashlib.sha256()
    received = 0
    async with (
        httpx.AsyncClient(base_url=hub_url, headers={"X-API-Key": API_KEY}, timeout=20) as c,
        c.stream("GET", "/proxy/other/big") as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-length"] == str(BIG)
        async for chunk in r.aiter_raw():
            if received < 1024 * 1024 <= received + len(chunk):
                # The first MB is here while the provider has not sent the rest: the hub
                # passes the body on as it arrives instead of collecting it.
                assert provider.sent == 1024 * 1024
                provider.released.set()
            received += len(chunk)
            digest.update(chunk)
    assert received == BIG
    assert digest.hexdigest() == expected.hexdigest()


async def test_a_provider_failing_mid_body_cuts_the_answer_and_counts_as_a_failure(
    hub_url: str, provider: Provider
) -> None:
    labels = {"connection": "other", "status": "error"}
    before = REGISTRY.get_sample_value("switchboard_outbound_requests_total", labels) or 0.0
    received = 0

    async with httpx.AsyncClient(base_url=hub_url, headers={"X-API-Key": API_KEY}) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            async with c.stream("GET", "/proxy/other/cut") as r:
                assert r.status_code == 200
                async for chunk in r.aiter_raw():
                    received += len(chunk)

    assert received < BIG  # never a short body that looks complete
    after = REGISTRY.get_sample_value("switchboard_outbound_requests_total", labels)
    assert after == before + 1
