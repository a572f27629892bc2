"""ACME CRM simulator: JWT token, CRUD, paging, per-client/endpoint limit, signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest

from switchboard.sandbox import AcmeSimulator, AcmeWebhookSettings
from tests.sandbox.conftest import Receiver
from tests.support import eventually

CONTACTS = "/v1/acme/contacts"
CREDENTIALS = {"client_id": "sandbox", "client_secret": "sandbox-secret"}


@pytest.fixture
def sim() -> AcmeSimulator:
    return AcmeSimulator(rate_limit=1000)


@pytest.fixture
async def http(
    sim: AcmeSimulator, asgi_server: Callable[[Any], str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=asgi_server(sim.app)) as c:
        token = (await c.post("/token", json=CREDENTIALS)).json()["access_token"]
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


async def test_token_is_an_hs256_jwt_from_acme(http: httpx.AsyncClient, sim: AcmeSimulator) -> None:
    response = await http.post("/token", json=CREDENTIALS)

    body = response.json()
    assert body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], sim.signing_key, algorithms=["HS256"], issuer="acme")
    assert claims["sub"] == "sandbox"
    assert claims["exp"] - claims["iat"] == 3600
    form = await http.post("/token", data=CREDENTIALS)
    assert form.status_code == 200
    wrong = await http.post("/token", json={**CREDENTIALS, "client_secret": "x"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


async def test_bearer_is_required_and_checked(http: httpx.AsyncClient, sim: AcmeSimulator) -> None:
    missing = await http.get(CONTACTS, headers={"Authorization": ""})
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthorized"
    forged = jwt.encode(
        {"iss": "acme", "sub": "sandbox", "exp": time.time() + 60},
        "not-the-simulators-key-but-long-enough",
    )
    bad = await http.get(CONTACTS, headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401
    stale = jwt.encode(
        {"iss": "acme", "sub": "sandbox", "exp": int(time.time()) - 5}, sim.signing_key
    )
    expired = await http.get(CONTACTS, headers={"Authorization": f"Bearer {stale}"})
    assert expired.json()["error"] == "token_expired"


async def test_crud(http: httpx.AsyncClient) -> None:
    created = await http.post(
        CONTACTS, json={"acme_first_name": "Ada", "acme_last_name": "L", "acme_email": "a@x.io"}
    )
    assert created.status_code == 201
    record = created.json()
    cid = record["id"]
    assert record["acme_email"] == "a@x.io"

    assert (await http.get(f"{CONTACTS}/{cid}")).json() == record
    merged = await http.put(f"{CONTACTS}/{cid}", json={"acme_last_name": "Lovelace"})
    assert merged.json() == {**record, "acme_last_name": "Lovelace"}
    assert (await http.delete(f"{CONTACTS}/{cid}")).status_code == 204
    assert (await http.get(f"{CONTACTS}/{cid}")).status_code == 404
    assert (await http.put(f"{CONTACTS}/{cid}", json={})).status_code == 404
    assert (await http.delete(f"{CONTACTS}/{cid}")).status_code == 404
    unknown = await http.post(CONTACTS, json={"firstName": "ours, not ACME's"})
    assert unknown.status_code == 422


async def test_list_pages(http: httpx.AsyncClient, sim: AcmeSimulator) -> None:
    for i in range(7):
        sim.create({"acme_email": f"p{i}@x.io"})

    seen: list[str] = []
    page: int | None = 1
    while page is not None:
        body = (await http.get(CONTACTS, params={"page": page, "per_page": 3})).json()
        seen += [r["acme_email"] for r in body["data"]]
        page = body["next_page"]

    assert seen == [f"p{i}@x.io" for i in range(7)]
    assert (await http.get(CONTACTS, params={"per_page": 101})).status_code == 422


async def test_rate_limit_per_client_and_endpoint(
    http: httpx.AsyncClient, sim: AcmeSimulator
) -> None:
    sim.rate_limit = 10

    responses = [await http.get(CONTACTS) for _ in range(11)]

    assert [r.status_code for r in responses] == [200] * 10 + [429]
    assert responses[0].headers["X-RateLimit-Limit"] == "10"
    assert responses[0].headers["X-RateLimit-Remaining"] == "9"
    throttled = responses[-1]
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.headers["X-RateLimit-Remaining"] == "0"
    assert int(throttled.headers["X-RateLimit-Reset"]) >= int(time.time())
    # Another endpoint has its own budget.
    assert (await http.post(CONTACTS, json={})).status_code == 201


async def test_rate_window_slides(http: httpx.AsyncClient, sim: AcmeSimulator) -> None:
    sim.rate_limit, sim.rate_window = 2, 0.2
    assert [(await http.get(CONTACTS)).status_code for _ in range(3)] == [200, 200, 429]

    async def recovered() -> bool:
        return (await http.get(CONTACTS)).status_code == 200

    await eventually(recovered, timeout=2)


async def test_signed_webhooks_with_retries(
    asgi_server: Callable[[Any], str], receiver: Callable[..., tuple[Receiver, str]]
) -> None:
    rec, hook = receiver(fail_first=1)
    sim = AcmeSimulator(
        webhooks=AcmeWebhookSettings(url=hook, secret="s3cret", retry_base_seconds=0.01)
    )
    asgi_server(sim.app)

    created = sim.create({"acme_email": "w@x.io"})
    sim.update(created["id"], {"acme_first_name": "W"})
    sim.delete(created["id"])

    async def all_delivered() -> bool:
        return sim.outbox.stats()["delivered"] == 3 and sim.outbox.idle

    await eventually(all_delivered)
    received = rec.snapshot()
    assert len(received) == 4  # the first attempt failed and was retried
    for request in received:
        expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-acme-signature"] == f"sha256={expected}"
    bodies = [json.loads(r.body) for r in received[1:]]
    assert sorted(b["event"] for b in bodies) == [
        "contact.created",
        "contact.deleted",
        "contact.updated",
    ]
    assert all(b["payload"]["id"] == created["id"] and b["id"] for b in bodies)
