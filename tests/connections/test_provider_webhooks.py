"""One webhook endpoint per provider: a HubSpot app's batch, signed with the app's secret, is
routed by ``portalId`` to the connections of that portal, and to no other."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from switchboard.config import HubConfig
from switchboard.db import Database
from switchboard.models import Job, WebhookDelivery

SECRET = "app-secret-1"


@pytest.fixture
def hub_config() -> HubConfig:
    return HubConfig.model_validate(
        {
            "integrations": {
                "hs": {
                    "provider": "hubspot",
                    "client_id": "cid",
                    "client_secret": SECRET,
                    "base_url": "http://127.0.0.1:9",
                },
                "other": {
                    "provider": "hubspot",
                    "client_id": "cid2",
                    "client_secret": "another-secret",
                    "base_url": "http://127.0.0.1:9",
                },
            }
        }
    )


def event(portal: int, object_id: int, n: int) -> dict[str, Any]:
    return {
        "eventId": n,
        "subscriptionId": 7,
        "portalId": portal,
        "appId": 1,
        "occurredAt": 1_700_000_000_000 + n,
        "subscriptionType": "contact.creation",
        "objectId": object_id,
    }


async def post(
    client: httpx.AsyncClient, path: str, events: list[dict[str, Any]], secret: str = SECRET
) -> httpx.Response:
    body = json.dumps(events).encode()
    ts = str(int(time.time() * 1000))
    message = b"POST" + f"http://hub{path}".encode() + body + ts.encode()
    sig = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    headers = {
        "X-HubSpot-Signature-v3": sig,
        "X-HubSpot-Request-Timestamp": ts,
        "Content-Type": "application/json",
    }
    return await client.post(path, content=body, headers=headers)


async def connect(client: httpx.AsyncClient, name: str, account: str, integ: str = "hs") -> str:
    r = await client.post(
        "/connections",
        json={
            "integration": integ,
            "name": name,
            "account": account,
            "end_user": {"id": name},
            "auth": {"type": "token", "token": "t"},
        },
    )
    assert r.status_code == 201, r.text
    cid: str = r.json()["id"]
    return cid


async def routed(db: Database) -> dict[str, set[str]]:
    """The refresh jobs enqueued, as connection → external ids."""
    async with db.read_session() as session:
        jobs = (await session.scalars(select(Job).where(Job.kind == "contacts.refresh"))).all()
    out: dict[str, set[str]] = {}
    for job in jobs:
        out.setdefault(job.payload["connection"], set()).add(job.payload["external_id"])
    return out


async def test_a_batch_is_routed_by_portal(client: httpx.AsyncClient, db: Database) -> None:
    a = await connect(client, "a", "111")
    b = await connect(client, "b", "222")
    a2 = await connect(client, "a2", "111")  # another end user on the same portal
    elsewhere = await connect(client, "z", "222", integ="other")  # another app's connection
    batch = [event(111, 1, 1), event(222, 2, 2), event(333, 3, 3), event(111, 4, 4)]
    r = await post(client, "/webhooks/providers/hubspot", batch)
    assert r.status_code == 200, r.text
    assert await routed(db) == {a: {"1", "4"}, a2: {"1", "4"}, b: {"2"}}
    assert elsewhere not in await routed(db)
    async with db.read_session() as session:
        unrouted = (
            await session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.outcome == "unrouted")
            )
        ).all()
    assert [u.connection for u in unrouted] == ["providers:hubspot"]
    assert "333" in (unrouted[0].detail or "")
    # The other app's secret routes to its own connections only.
    r = await post(client, "/webhooks/providers/hubspot", [event(222, 9, 9)], "another-secret")
    assert r.status_code == 200
    assert (await routed(db))[elsewhere] == {"9"}
    assert "9" not in (await routed(db))[b]


async def test_a_bad_signature_is_refused_and_nothing_routed(
    client: httpx.AsyncClient, db: Database
) -> None:
    await connect(client, "a", "111")
    r = await post(client, "/webhooks/providers/hubspot", [event(111, 1, 1)], "wrong")
    assert r.status_code == 401
    assert await routed(db) == {}
    r = await client.post("/webhooks/providers/hubspot", content=b"[]")
    assert r.status_code == 401


async def test_the_providers_name_is_the_endpoint_when_no_connection_has_it(
    client: httpx.AsyncClient, db: Database
) -> None:
    a = await connect(client, "a", "111")
    r = await post(client, "/webhooks/hubspot", [event(111, 5, 5)])
    assert r.status_code == 200, r.text
    assert await routed(db) == {a: {"5"}}
    assert (await client.post("/webhooks/providers/acme", content=b"[]")).status_code == 404
    assert (await client.post("/webhooks/providers/pipedrive", content=b"[]")).status_code == 404
