"""HubSpot webhooks: batched arrays, v3 signatures, retries, duplicates."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from switchboard.connectors.hubspot.simulator import (
    HubSpotSimulator,
    HubSpotWebhookSettings,
    sign_v3,
)
from tests.sandbox.conftest import Receiver
from tests.support import wait_until

SECRET = "whsecret-for-tests"


def verify_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str, sig: str) -> bool:
    """HubSpot's documented algorithm, written independently of the simulator."""
    source = f"{method}{uri}{body.decode()}{timestamp}".encode()
    expected = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest())
    return hmac.compare_digest(expected.decode(), sig)


def test_documented_test_vector() -> None:
    args = (
        "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        "POST",
        "https://www.example.com/webhook_uri",
        b"{'example_field':'example_value'}",
        "1693657560000",
    )
    expected = "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="

    assert verify_v3(*args, expected)
    assert sign_v3(*args) == expected


def events(rec: Receiver) -> list[dict[str, Any]]:
    return [e for r in rec.snapshot() for e in json.loads(r.body)]


@pytest.fixture
def start(
    asgi_server: Callable[[Any], str], receiver: Callable[..., tuple[Receiver, str]]
) -> Callable[..., tuple[HubSpotSimulator, Receiver, str]]:
    def go(fail_first: int = 0, **settings: Any) -> tuple[HubSpotSimulator, Receiver, str]:
        rec, hook = receiver(fail_first=fail_first)
        sim = HubSpotSimulator(
            contacts=3,
            webhooks=HubSpotWebhookSettings(
                url=hook, client_secret=SECRET, retry_base_seconds=0.01, **settings
            ),
        )
        return sim, rec, asgi_server(sim.app)

    return go


def test_changes_arrive_signed_in_batches(start: Callable[..., Any]) -> None:
    sim, rec, base = start(properties=["firstname", "email"])
    auth = {"Authorization": "Bearer pat-sandbox"}
    with httpx.Client(base_url=base, headers=auth) as http:
        created = http.post(
            "/crm/v3/objects/contacts", json={"properties": {"email": "w@x.io", "phone": "1"}}
        ).json()
        http.patch(
            f"/crm/v3/objects/contacts/{created['id']}", json={"properties": {"firstname": "W"}}
        )
        http.delete(f"/crm/v3/objects/contacts/{created['id']}")
    sim.ui_merge(1, 2)

    wait_until(lambda: {e["subscriptionType"] for e in events(rec)} >= {"contact.merge"})
    received = rec.snapshot()
    for request in received:
        headers = request.headers
        assert verify_v3(
            SECRET,
            "POST",
            request.url,
            request.body,
            headers["x-hubspot-request-timestamp"],
            headers["x-hubspot-signature-v3"],
        )
        assert isinstance(json.loads(request.body), list)
    got = events(rec)
    kinds = [(e["subscriptionType"], e.get("propertyName")) for e in got]
    assert ("contact.creation", None) in kinds
    assert ("contact.propertyChange", "email") in kinds
    assert ("contact.propertyChange", "firstname") in kinds
    assert ("contact.propertyChange", "phone") not in kinds  # not subscribed
    assert ("contact.deletion", None) in kinds
    merge = next(e for e in got if e["subscriptionType"] == "contact.merge")
    assert merge["primaryObjectId"] == 1
    assert merge["mergedObjectIds"] == [2]
    assert merge["changeSource"] == "CRM_UI"
    creation = next(e for e in got if e["subscriptionType"] == "contact.creation")
    assert creation["objectId"] == int(created["id"])
    assert creation["portalId"] and creation["appId"] and creation["occurredAt"]
    assert creation["changeSource"] == "API"
    # Fewer requests than events: they were batched.
    assert len(received) < len(got)


def test_failed_deliveries_are_retried_with_attempt_numbers(start: Callable[..., Any]) -> None:
    sim, rec, _ = start(fail_first=2)

    sim.ui_create({"email": "r@x.io"})

    wait_until(lambda: len(rec.snapshot()) == 3 and sim.webhooks.idle)
    attempts = [json.loads(r.body)[0]["attemptNumber"] for r in rec.snapshot()]
    assert attempts == [0, 1, 2]
    assert sim.webhooks.outbox.stats()["delivered"] == 1
    # Every retry is freshly signed.
    assert len({r.headers["x-hubspot-signature-v3"] for r in rec.snapshot()}) == 3


def test_gives_up_after_max_attempts(start: Callable[..., Any]) -> None:
    sim, rec, _ = start(fail_first=100, max_attempts=3)

    sim.ui_delete(1)

    wait_until(lambda: sim.webhooks.outbox.stats()["gave_up"] == 1)
    assert len(rec.snapshot()) == 3


def test_duplicates_and_shuffle(start: Callable[..., Any]) -> None:
    sim, rec, _ = start(duplicate_rate=1.0, shuffle=True, seed=1)

    for i in range(10):
        sim.ui_create({"email": f"d{i}@x.io"})

    wait_until(lambda: len(events(rec)) >= 40 and sim.webhooks.idle)
    got = events(rec)
    keys = [(e["subscriptionId"], e["eventId"], e["objectId"], e["occurredAt"]) for e in got]
    assert len(keys) == 2 * len(set(keys))
    ids = [e["eventId"] for e in json.loads(rec.snapshot()[0].body)]
    assert ids != sorted(ids)


def test_webhook_settings_control_endpoint(start: Callable[..., Any]) -> None:
    sim, rec, base = start()
    with httpx.Client(base_url=base) as http:
        changed = http.patch("/_sandbox/hubspot/webhooks", json={"url": None})
        assert changed.json()["settings"]["url"] is None
        created = http.post("/_sandbox/hubspot/contacts", json={"properties": {"email": "q@x.io"}})
        assert created.status_code == 201
        assert sim.webhooks.idle
        state = http.get("/_sandbox/hubspot/webhooks").json()
    assert state["stats"]["attempts"] == 0
    assert rec.snapshot() == []
