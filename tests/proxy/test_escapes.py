"""Only the connection's base URL is reachable: every way out of it is a 400, and nothing is
sent. Sent over a raw socket, since HTTP clients resolve a literal ``..`` before sending."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig
from switchboard.connectors.hubspot.simulator import HubSpotSimulator
from switchboard.errors import BadRequest
from switchboard.proxy.service import provider_url
from switchboard.sandbox import zero_config
from tests.proxy.conftest import Wire
from tests.support import API_KEY

ESCAPES = [
    "../../_sandbox/hubspot/state",
    "crm/v3/../../../../etc/passwd",
    "./crm/v3/objects/contacts",
    "%2e%2e/%2e%2e/_sandbox/hubspot/state",
    ".%2E/x",
    "%252e%252e/x",
    "crm%2f..%2f..%2fx",
    "crm%2F..",
    "crm\\..\\..\\x",
    "crm%5c..%5cx",
    "//evil.example/x",
    "http://evil.example/x",
    "https:%2f%2fevil.example/x",
    "crm/%00/x",
    "crm//v3",
]


@pytest.fixture
def hub_config(hubspot_url: str) -> HubConfig:
    data = zero_config({"hubspot": hubspot_url})
    return HubConfig.model_validate(data)


async def raw_get(hub_url: str, target: str) -> tuple[int, Any]:
    """``GET target`` exactly as written (no client-side normalisation)."""
    url = httpx.URL(hub_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nX-API-Key: {API_KEY}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


@pytest.mark.parametrize("escape", ESCAPES)
async def test_a_path_leaving_the_base_url_is_refused_and_nothing_is_sent(
    hub_url: str, hubspot: HubSpotSimulator, wire: Wire, escape: str
) -> None:
    status, body = await raw_get(hub_url, f"/proxy/hubspot/{escape}")

    assert status == 400, body
    assert body["detail"].startswith("The proxied path")
    assert wire.seen == []
    assert hubspot.log.entries() == []


async def test_the_same_path_inside_the_base_url_is_served(
    hub_url: str, hubspot: HubSpotSimulator, wire: Wire
) -> None:
    """The control for the escapes above: the same socket and connection reach HubSpot."""
    contact = hubspot.ui_create({"email": "ada@example.com"})

    status, body = await raw_get(hub_url, f"/proxy/hubspot/crm/v3/objects/contacts/{contact['id']}")

    assert status == 200 and body["id"] == contact["id"]
    assert [a.path for a in wire.seen] == [f"/crm/v3/objects/contacts/{contact['id']}"]


# The rules on a base URL with a path, where '..' would climb out of it (pure function).
BASE = httpx.URL("https://api.example.com/v2/")


@pytest.mark.parametrize(
    ("raw", "query", "expected"),
    [
        (b"deals", b"", "https://api.example.com/v2/deals"),
        (b"deals/7/", b"a=1&b=%20", "https://api.example.com/v2/deals/7/?a=1&b=%20"),
        (b"files/a%20b.json", b"", "https://api.example.com/v2/files/a%20b.json"),
        (b"", b"", "https://api.example.com/v2/"),
    ],
)
def test_paths_are_appended_to_the_base_path(raw: bytes, query: bytes, expected: str) -> None:
    assert str(provider_url(BASE, raw, query)) == expected


@pytest.mark.parametrize("raw", [e.encode() for e in ESCAPES] + [b"..", b"x/..", b"%2e"])
def test_no_escape_leaves_a_base_path(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        provider_url(BASE, raw, b"")
