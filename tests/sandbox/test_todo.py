"""TODO sender: payloads, Standard Webhooks signatures, scenarios, bounded load."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import islice
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from switchboard.connectors.todo_webhooks.simulator import generate_secret
from switchboard.sandbox import TodoSender, TodoSimulator, random_events, task_event
from tests.sandbox.conftest import Receiver
from tests.support import eventually


async def test_scenario_is_signed_with_standard_webhooks(
    receiver: Callable[..., tuple[Receiver, str]],
) -> None:
    rec, hook = receiver()
    secret = generate_secret()
    events = [
        task_event("created", user_id="1", task_id="22", content="Play games all day"),
        task_event("updated", user_id="1", task_id="22", content="x", is_completed=True),
        task_event("deleted", user_id="1", task_id="22", content="x"),
    ]

    async with TodoSender(hook, secret=secret) as sender:
        results = await sender.run_scenario(events)

    assert [r.status for r in results] == [200, 200, 200]
    received = rec.snapshot()
    assert [json.loads(r.body) for r in received] == events
    for request in received:
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["metadata"]["id"] == "22"
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(received[0].body, received[0].headers)


async def test_unsigned_without_secret(receiver: Callable[..., tuple[Receiver, str]]) -> None:
    rec, hook = receiver()

    async with TodoSender(hook) as sender:
        await sender.send(task_event("created", user_id="1", task_id="1", content="c"))

    assert "webhook-signature" not in rec.snapshot()[0].headers


def test_payload_shape() -> None:
    event = task_event(
        "created", user_id="1", task_id="22", content="c", timestamp="2025-04-01T14:23:45-04:00"
    )

    assert event == {
        "event": "created",
        "timestamp": "2025-04-01T14:23:45-04:00",
        "metadata": {"userId": "1", "id": "22", "content": "c", "isCompleted": False},
    }


def test_random_events_are_plausible_and_deterministic() -> None:
    events = list(islice(random_events(seed=5, users=3), 300))

    assert events == list(islice(random_events(seed=5, users=3), 300))
    created: set[str] = set()
    closed: set[str] = set()
    for event in events:
        task_id = event["metadata"]["id"]
        if event["event"] == "created":
            assert task_id not in created
            created.add(task_id)
        else:
            assert task_id in created and task_id not in closed
            if event["event"] == "deleted" or event["metadata"]["isCompleted"]:
                closed.add(task_id)
    assert {e["event"] for e in events} == {"created", "updated", "deleted"}
    assert {e["metadata"]["userId"] for e in events} <= {"1", "2", "3"}


async def test_load_is_bounded_by_count(receiver: Callable[..., tuple[Receiver, str]]) -> None:
    rec, hook = receiver()

    async with TodoSender(hook) as sender:
        results = await sender.run_load(rate=500, count=25)

    assert len(results) == 25
    assert len(rec.snapshot()) == 25


async def test_load_is_bounded_by_duration(receiver: Callable[..., tuple[Receiver, str]]) -> None:
    _, hook = receiver()

    async with TodoSender(hook) as sender:
        results = await sender.run_load(rate=50, duration=0.2)

    # rate x duration = 10 sends scheduled in the window (the first at t=0).
    assert len(results) == 10
    with pytest.raises(ValueError, match="count or duration"):
        await sender.run_load(rate=1)


async def test_control_endpoints(
    asgi_server: Callable[[Any], str], receiver: Callable[..., tuple[Receiver, str]]
) -> None:
    rec, hook = receiver()
    sim = TodoSimulator(target=hook)
    url = asgi_server(sim.app)
    async with httpx.AsyncClient(base_url=url) as http:
        event = task_event("created", user_id="2", task_id="9", content="c")
        sent = await http.post("/_sandbox/todo/send", json={"events": [event]})
        assert sent.json()["results"][0]["status"] == 200

        started = await http.post("/_sandbox/todo/load", json={"rate": 200, "count": 15, "seed": 1})
        assert started.status_code == 202
        run_id = started.json()["run"]

        async def done() -> bool:
            return (await http.get(f"/_sandbox/todo/runs/{run_id}")).json()["state"] == "done"

        await eventually(done)
        run = (await http.get(f"/_sandbox/todo/runs/{run_id}")).json()
        assert run["sent"] == 15
        assert run["statuses"] == {"200": 15}
        unbounded = await http.post("/_sandbox/todo/load", json={"rate": 5})
        assert unbounded.status_code == 422
    assert len(rec.snapshot()) == 16
    assert Webhook(sim.secret or "").verify(rec.snapshot()[0].body, rec.snapshot()[0].headers)
