"""Deliveries to the sandbox receiver: Standard Webhooks signatures (checked with the
``standardwebhooks`` library), the retry schedule, Retry-After, 410, giving up, recover, resend,
secret rotation and per-object order."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from tests.changes.conftest import SCHEDULE, Subscriber, all_changes
from tests.support import eventually


async def _contact(client: httpx.AsyncClient, email: str, **fields: str) -> str:
    r = await client.post("/contacts", json={"email": email, **fields})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _attempts(client: httpx.AsyncClient, sub_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/event-subscriptions/{sub_id}/attempts", params={"limit": 500})
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))


def _headers(delivery: dict[str, Any]) -> dict[str, str]:
    return {
        "webhook-id": delivery["webhook_id"],
        "webhook-timestamp": delivery["timestamp"],
        "webhook-signature": delivery["signature"],
    }


async def test_a_delivery_is_signed_as_standard_webhooks_says(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    sub = await subscriber.subscribe("a", ["contact.*"])
    assert sub["secret"].startswith("whsec_")
    hub_id = await _contact(client, "signed@example.com")
    [got] = await subscriber.received("a", 1)
    payload = Webhook(sub["secret"]).verify(got["raw"], _headers(got))
    assert payload["type"] == "contact.created"
    assert payload["data"]["contact"]["id"] == hub_id
    assert got["verified"] is True  # the receiver's own check, with the same library
    assert got["webhook_id"] == f"{payload['id']}_{sub['id']}"
    [event] = [e for e in await all_changes(client) if e["type"] == "contact.created"]
    assert event["id"] == payload["id"] and event["seq"] == payload["seq"]
    # The secret is shown once: never again.
    listed = (await client.get(f"/event-subscriptions/{sub['id']}")).json()
    assert listed["secret"] is None
    other = Webhook("whsec_" + "QUJD" * 8)
    try:
        other.verify(got["raw"], _headers(got))
    except Exception:
        pass
    else:
        raise AssertionError("a wrong secret verified")


async def test_each_retry_waits_its_step_of_the_schedule_with_the_same_webhook_id(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    sub = await subscriber.subscribe("r", ["contact.created"])
    endpoint = subscriber.endpoint("r")
    endpoint.mode, endpoint.times = "fail", 3
    await _contact(client, "retry@example.com")
    deliveries = await subscriber.received("r", 4, status=None)
    assert [d["status"] for d in deliveries] == [500, 500, 500, 200]
    assert len({d["webhook_id"] for d in deliveries}) == 1
    gaps = [b["received_at"] - a["received_at"] for a, b in itertools.pairwise(deliveries)]
    for gap, step in zip(gaps, SCHEDULE[1:], strict=True):
        assert gap >= step - 0.02, (gaps, SCHEDULE)

    async def recorded() -> bool:
        return len(await _attempts(client, sub["id"])) == 4

    await eventually(recorded)
    attempts = await _attempts(client, sub["id"])
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in attempts] == [
        (1, "retry", 500),
        (2, "retry", 500),
        (3, "retry", 500),
        (4, "succeeded", 200),
    ]
    assert '"received":false' in attempts[0]["response"].replace(" ", "")
    # The success stopped the clock of the 5-day disable that the failures had started.
    state = (await client.get(f"/event-subscriptions/{sub['id']}")).json()
    assert state["failing_since"] is None and state["enabled"] is True


async def test_retry_after_of_a_429_replaces_the_schedules_step(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    await subscriber.subscribe("slow", ["contact.created"])
    endpoint = subscriber.endpoint("slow")
    endpoint.mode, endpoint.times, endpoint.retry_after = "429", 1, 1.5
    await _contact(client, "later@example.com")
    first, second = await subscriber.received("slow", 2, status=None)
    assert (first["status"], second["status"]) == (429, 200)
    assert second["received_at"] - first["received_at"] >= 1.45  # not the schedule's 0.3 s


async def test_given_up_after_the_last_step_then_recovered(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    sub = await subscriber.subscribe("down", ["contact.created"])
    endpoint = subscriber.endpoint("down")
    endpoint.mode = "fail"
    since = time.time()
    await _contact(client, "down@example.com")
    failed = await subscriber.received("down", len(SCHEDULE), status=500)

    async def given_up() -> bool:
        attempts = await _attempts(client, sub["id"])
        return bool(attempts) and attempts[-1]["outcome"] == "failed"

    await eventually(given_up)
    assert len(await _attempts(client, sub["id"])) == len(SCHEDULE)
    endpoint.mode = "ok"
    r = await client.post(
        f"/event-subscriptions/{sub['id']}/recover",
        json={"since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since - 60))},
    )
    assert r.status_code == 202 and r.json() == {"queued": 1}
    [ok] = await subscriber.received("down", 1, status=200)
    assert ok["webhook_id"] == failed[0]["webhook_id"]

    async def recorded() -> bool:
        return (await _attempts(client, sub["id"]))[-1]["outcome"] == "succeeded"

    await eventually(recorded)
    # Recovered means delivered: a second recover has nothing left to send.
    r = await client.post(
        f"/event-subscriptions/{sub['id']}/recover", json={"since": "2020-01-01T00:00:00Z"}
    )
    assert r.json() == {"queued": 0}


async def test_an_answer_later_than_the_timeout_is_retried_and_logged(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    sub = await subscriber.subscribe("late", ["contact.created"])
    endpoint = subscriber.endpoint("late")
    endpoint.mode, endpoint.times, endpoint.delay_ms = "timeout", 1, 5_000  # timeout: 1 s
    await _contact(client, "late@example.com")
    first, second = await subscriber.received("late", 2)
    assert second["webhook_id"] == first["webhook_id"]

    async def logged() -> bool:
        return len(await _attempts(client, sub["id"])) == 2

    await eventually(logged)
    timed_out, delivered = await _attempts(client, sub["id"])
    assert (timed_out["outcome"], timed_out["error"], timed_out["status_code"]) == (
        "retry",
        "timed out",
        None,
    )
    assert 900 <= timed_out["latency_ms"] < 4_000
    assert (delivered["outcome"], delivered["status_code"]) == ("succeeded", 200)
    assert delivered["response"] == '{"received":true}'  # the receiver's answer, as sent


async def test_resend_delivers_the_same_event_again(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    await subscriber.subscribe("again", ["contact.created"])
    await _contact(client, "again@example.com")
    [first] = await subscriber.received("again", 1)
    r = await client.post(f"/changes/{first['id']}/resend")
    assert r.status_code == 202 and r.json() == {"queued": 1}
    _, second = await subscriber.received("again", 2)
    assert second["webhook_id"] == first["webhook_id"], [
        (e["id"], e["type"], e["subject"], e["data"]) for e in await all_changes(client)
    ]
    assert second["raw"] == first["raw"]
    assert (await client.post("/changes/evt_999999/resend")).status_code == 404


async def test_410_disables_the_subscription_at_once(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    sub = await subscriber.subscribe("gone", ["contact.*"])
    watcher = await subscriber.subscribe("watch", ["event_subscription.*"])
    subscriber.endpoint("gone").mode = "410"
    await _contact(client, "gone@example.com")
    [gone] = await subscriber.received("gone", 1, status=410)
    [notice] = await subscriber.received("watch", 1)
    assert notice["type"] == "event_subscription.disabled"
    assert notice["data"]["subscription"]["id"] == sub["id"]
    state = (await client.get(f"/event-subscriptions/{sub['id']}")).json()
    assert state["enabled"] is False and "410" in state["disabled_reason"]
    await _contact(client, "after@example.com")
    await subscriber.received("watch", 1)
    assert len(subscriber.endpoint("gone").deliveries) == 1  # nothing after the 410
    assert watcher["id"] != sub["id"] and gone["status"] == 410


async def test_rotation_signs_with_both_secrets_during_the_overlap(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    sub = await subscriber.subscribe("rot", ["contact.created"])
    r = await client.post(f"/event-subscriptions/{sub['id']}/rotate-secret")
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != sub["secret"] and new.startswith("whsec_")
    await _contact(client, "rotated@example.com")
    [got] = await subscriber.received("rot", 1)
    assert len(got["signature"].split(" ")) == 2
    for secret in (sub["secret"], new):
        Webhook(secret).verify(got["raw"], _headers(got))  # either secret verifies


async def test_events_of_one_object_arrive_in_order_through_failures(
    client: httpx.AsyncClient, subscriber: Subscriber
) -> None:
    await subscriber.subscribe("order", ["contact.*"])
    endpoint = subscriber.endpoint("order")
    endpoint.mode, endpoint.times = "fail", 3
    first = await _contact(client, "first@example.com")
    for name in ("B", "C", "D"):
        r = await client.patch(f"/contacts/{first}", json={"firstName": name})
        assert r.status_code == 200, r.text
    second = await _contact(client, "second@example.com")
    await subscriber.received("order", 5)
    got = [d for d in subscriber.endpoint("order").deliveries]
    about_first = [d.as_dict() for d in got if d.body.get("subject") == f"contact:{first}"]
    delivered = [d["seq"] for d in about_first if d["status"] == 200]
    assert delivered == sorted(delivered) and len(delivered) == 4
    # A later event about the object is never sent before the earlier one succeeded.
    for i, d in enumerate(about_first):
        earlier = [e for e in about_first[:i] if e["seq"] < d["seq"]]
        assert all(
            any(x["seq"] == e["seq"] and x["status"] == 200 for x in about_first[:i])
            for e in earlier
        )
        assert all(e["seq"] <= d["seq"] for e in about_first[:i])
    names = [d["data"]["contact"]["firstName"] for d in about_first if d["status"] == 200]
    assert names == [None, "B", "C", "D"]
    assert any(d.body.get("subject") == f"contact:{second}" for d in got)
