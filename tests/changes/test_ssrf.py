"""The SSRF check at delivery time checks the address the POST connects to: a subscription's
host is resolved once per delivery, and a name that answers a public address to the check and a
loopback one a moment later (DNS rebinding) never reaches the loopback service.

The names here are resolved by a stand-in for the system resolver (``socket.getaddrinfo``,
which asyncio's ``getaddrinfo`` calls), the only way to make a name answer differently on
each lookup without a DNS server."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from switchboard.config import HubConfig
from switchboard.sandbox import Sandbox, zero_config
from tests.changes.conftest import SCHEDULE, Subscriber
from tests.support import eventually

PUBLIC = "93.184.215.14"
"""A global address (never connected to here but by a delivery that followed the check)."""

Resolver = Callable[..., list[Any]]


def _answer(address: str, port: int) -> list[Any]:
    return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Iterator[str]]]:
    """``names[host]``: the addresses ``host`` resolves to, one per lookup; other names resolve
    as usual."""
    real: Resolver = socket.getaddrinfo
    answers: dict[str, Iterator[str]] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name in answers:
            return _answer(next(answers[name]), int(port))
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield answers


async def _attempts(client: httpx.AsyncClient, sub_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/event-subscriptions/{sub_id}/attempts", params={"limit": 500})
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))


async def test_a_name_rebound_to_loopback_after_the_check_is_not_followed(
    client: httpx.AsyncClient,
    subscriber: Subscriber,
    sandbox: Sandbox,
    names: dict[str, Iterator[str]],
) -> None:
    port = int(sandbox.urls["receiver"].rsplit(":", 1)[1])
    # Public, then loopback, then public...: whoever resolves right after a check gets the
    # receiver on this machine, which a delivery that resolves again to connect would reach.
    names["rebind.example"] = iter([PUBLIC, "127.0.0.1"] * 10)
    r = await client.post(
        "/event-subscriptions",
        json={
            "url": f"http://rebind.example:{port}/sandbox/receiver/rebind",
            "event_types": ["contact.created"],
        },
    )
    assert r.status_code == 201, r.text  # checked: the name answered the public address
    sub_id = r.json()["id"]
    created = await client.post("/contacts", json={"email": "rebind@example.com"})
    assert created.status_code == 201

    async def given_up() -> bool:
        attempts = await _attempts(client, sub_id)
        return len(attempts) == len(SCHEDULE) and attempts[-1]["outcome"] == "failed"

    await eventually(given_up, timeout=30)
    attempts = await _attempts(client, sub_id)
    # Each lookup was a check: the loopback answers were refused, the public ones connected to
    # (and got no answer: nothing listens there for this test).
    refused = [a for a in attempts if a["error"] and "loopback" in a["error"]]
    assert len(refused) == len(SCHEDULE) // 2
    assert all(a["status_code"] is None for a in attempts)
    assert subscriber.endpoint("rebind").deliveries == []


class TestPrivateAllowed:
    @pytest.fixture
    def hub_config(self, sandbox: Sandbox) -> HubConfig:
        data = zero_config(sandbox.urls)
        data["events"] = {"allow_private_urls": True}
        return HubConfig.model_validate(data)

    async def test_the_post_goes_to_the_resolved_address_under_the_urls_name(
        self,
        client: httpx.AsyncClient,
        subscriber: Subscriber,
        sandbox: Sandbox,
        names: dict[str, Iterator[str]],
    ) -> None:
        port = int(sandbox.urls["receiver"].rsplit(":", 1)[1])
        names["hooks.internal.example"] = iter(["127.0.0.1"] * 10)
        r = await client.post(
            "/event-subscriptions",
            json={
                "url": f"http://hooks.internal.example:{port}/sandbox/receiver/named",
                "event_types": ["contact.created"],
            },
        )
        assert r.status_code == 201, r.text
        subscriber.endpoint("named").secret = r.json()["secret"]
        await client.post("/contacts", json={"email": "named@example.com"})
        [got] = await subscriber.received("named", 1)
        assert got["verified"] is True
        assert got["host"] == f"hooks.internal.example:{port}"
