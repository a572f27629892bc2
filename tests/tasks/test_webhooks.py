"""POST /webhooks/{connection} for a TODO app: every row of TODO_WEBHOOKS.md's table."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from switchboard.config import HubConfig
from switchboard.db import Database
from switchboard.models import WebhookDelivery

SECRET = "whsec_" + base64.b64encode(b"todo-secret-for-tests-0123").decode()


@pytest.fixture
def hub_config() -> HubConfig:
    return HubConfig.model_validate(
        {
            "connections": {
                "todo": {"kind": "todo_webhooks"},
                "signed": {"kind": "todo_webhooks", "secret": SECRET},
                "feed": {"kind": "xml_feed", "url": "http://127.0.0.1:9/"},
            }
        }
    )


def event(
    kind: str, task: str = "22", ts: str = "2025-04-01T14:23:45-04:00", **md: Any
) -> dict[str, Any]:
    metadata = {"userId": "1", "id": task, "content": "Play games all day", "isCompleted": False}
    metadata.update(md)
    return {"event": kind, "timestamp": ts, "metadata": metadata}


async def post(
    client: httpx.AsyncClient, body: Any, path: str = "/webhooks/todo", **kw: Any
) -> httpx.Response:
    # Webhooks need no API key: senders are not our API clients.
    return await client.post(
        path, json=body, headers={"X-API-Key": ""} | kw.pop("headers", {}), **kw
    )


async def task(client: httpx.AsyncClient, task_id: str = "22") -> dict[str, Any]:
    r = await client.get(f"/tasks/{task_id}", params={"connection": "todo"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_created_new_id_is_202_and_stored(client: httpx.AsyncClient) -> None:
    r = await post(client, event("created"))
    assert r.status_code == 202 and r.content == b""
    t = await task(client)
    assert t["state"] == "open" and t["userId"] == "1" and t["content"] == "Play games all day"
    assert t["createdAt"] == "2025-04-01T18:23:45Z"  # the offset is honoured, stored as UTC


async def test_created_known_id_is_409_even_when_deleted(client: httpx.AsyncClient) -> None:
    await post(client, event("created"))
    r = await post(client, event("created", content="again"))
    assert r.status_code == 409 and r.json() == {"detail": "Duplicate task creation"}
    await post(client, event("deleted", ts="2025-04-02T00:00:00Z"))
    r = await post(client, event("created", content="third"))
    assert r.status_code == 409 and r.json() == {"detail": "Duplicate task creation"}


@pytest.mark.parametrize("kind", ["updated", "deleted"])
async def test_update_or_delete_of_unknown_id_is_404(client: httpx.AsyncClient, kind: str) -> None:
    r = await post(client, event(kind, task="nope"))
    assert r.status_code == 404 and r.json() == {"detail": "Task not found"}


async def test_update_completes_an_open_task_at_its_timestamp(client: httpx.AsyncClient) -> None:
    await post(client, event("created"))
    r = await post(client, event("updated", ts="2025-04-03T09:00:00", isCompleted=True))
    assert r.status_code == 202
    t = await task(client)
    assert t["state"] == "completed"
    assert t["completedAt"] == "2025-04-03T09:00:00Z"  # naive timestamps are UTC


async def test_update_on_a_completed_task_changes_nothing(client: httpx.AsyncClient) -> None:
    await post(client, event("created"))
    await post(client, event("updated", ts="2025-04-03T09:00:00Z", isCompleted=True))
    r = await post(
        client, event("updated", ts="2025-04-04T09:00:00Z", isCompleted=True, content="x")
    )
    assert r.status_code == 202
    t = await task(client)
    assert t["completedAt"] == "2025-04-03T09:00:00Z" and t["content"] == "Play games all day"


async def test_update_on_a_deleted_open_task_is_400(client: httpx.AsyncClient) -> None:
    await post(client, event("created"))
    await post(client, event("deleted", ts="2025-04-02T00:00:00Z"))
    r = await post(client, event("updated", ts="2025-04-03T00:00:00Z", isCompleted=True))
    assert r.status_code == 400 and r.json() == {"detail": "Invalid event status"}


async def test_update_on_a_deleted_completed_task_is_202(client: httpx.AsyncClient) -> None:
    await post(client, event("created"))
    await post(client, event("updated", ts="2025-04-02T00:00:00Z", isCompleted=True))
    await post(client, event("deleted", ts="2025-04-03T00:00:00Z"))
    r = await post(client, event("updated", ts="2025-04-04T00:00:00Z", isCompleted=True))
    assert r.status_code == 202


async def test_delete_is_soft_and_idempotent(client: httpx.AsyncClient) -> None:
    await post(client, event("created"))
    assert (await post(client, event("deleted", ts="2025-04-02T00:00:00Z"))).status_code == 202
    assert (await post(client, event("deleted", ts="2025-04-05T00:00:00Z"))).status_code == 202
    t = await task(client)
    assert t["state"] == "deleted" and t["deletedAt"] == "2025-04-02T00:00:00Z"


async def test_update_changes_content_of_an_open_task(client: httpx.AsyncClient) -> None:
    await post(client, event("created"))
    await post(client, event("updated", ts="2025-04-02T00:00:00Z", content="Read a book"))
    # An older update arriving late does not overwrite newer content.
    await post(client, event("updated", ts="2025-04-01T20:00:00Z", content="stale"))
    t = await task(client)
    assert t["content"] == "Read a book" and t["state"] == "open"


async def test_created_with_is_completed_creates_a_completed_task(
    client: httpx.AsyncClient,
) -> None:
    await post(client, event("created", ts="2025-04-01T10:00:00Z", isCompleted=True))
    t = await task(client)
    assert (
        t["state"] == "completed" and t["completedAt"] == t["createdAt"] == "2025-04-01T10:00:00Z"
    )


@pytest.mark.parametrize("kind", ["archived", "CREATED", ""])
async def test_any_other_event_is_400(client: httpx.AsyncClient, kind: str) -> None:
    r = await post(client, event(kind))
    assert r.status_code == 400 and r.json() == {"detail": "Invalid event status"}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"timestamp": "2025-04-01T00:00:00Z", "metadata": {}}, ["body", "event"]),
        (event("created", ts="yesterday"), ["body", "timestamp"]),
        (event("created", ts=None), ["body", "timestamp"]),
        (event("created", isCompleted="false"), ["body", "metadata", "isCompleted"]),
        (event("created", userId=1), ["body", "metadata", "userId"]),
        ({"event": "created", "timestamp": "2025-04-01T00:00:00Z"}, ["body", "metadata"]),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], loc: list[str]
) -> None:
    r = await post(client, body)
    assert r.status_code == 422
    assert loc in [item["loc"] for item in r.json()["detail"]]


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/webhooks/todo", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


async def test_unknown_connection_or_kind_is_404(client: httpx.AsyncClient) -> None:
    assert (await post(client, event("created"), path="/webhooks/nope")).status_code == 404
    r = await post(client, event("created"), path="/webhooks/feed")
    assert r.status_code == 404 and "does not receive webhooks" in r.json()["detail"]


async def test_exact_redelivery_is_acknowledged_without_effect(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = event("created")
    assert (await post(client, body)).status_code == 202
    assert (await post(client, body)).status_code == 202  # same body: a redelivery, not a 409
    await post(client, event("updated", ts="2025-04-02T00:00:00Z", isCompleted=True))
    assert (await post(client, body)).status_code == 202
    t = await task(client)
    assert t["state"] == "completed"
    async with db.read_session() as session:
        outcomes = [
            d.outcome
            for d in (
                await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
            ).all()
        ]
    assert outcomes == ["created", "redelivery", "completed", "redelivery"]


async def test_a_failed_delivery_is_processed_again_when_redelivered(
    client: httpx.AsyncClient,
) -> None:
    update = event("updated", ts="2025-04-02T00:00:00Z", isCompleted=True)
    assert (await post(client, update)).status_code == 404  # arrived before its create
    await post(client, event("created"))
    assert (await post(client, update)).status_code == 202  # the sender's retry now applies
    assert (await task(client))["state"] == "completed"


async def test_every_delivery_is_stored_raw_with_its_outcome(
    client: httpx.AsyncClient, db: Database
) -> None:
    await post(client, event("created"))
    await post(client, event("archived"))
    await client.post("/webhooks/todo", content=b"garbage")
    async with db.read_session() as session:
        rows = (await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all()
    assert [(r.status_code, r.outcome) for r in rows] == [
        (202, "created"),
        (400, "invalid_event"),
        (422, "invalid"),
    ]
    assert json.loads(rows[0].body) == event("created") and rows[2].body == "garbage"
    assert json.loads(rows[1].detail or "") == {"detail": "Invalid event status"}


# --- Standard Webhooks signatures --------------------------------------------------------


def signed(
    body: dict[str, Any], msg_id: str = "msg_1", at: datetime | None = None, secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, raw.decode())
    return raw, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def test_valid_signature_is_accepted(client: httpx.AsyncClient) -> None:
    raw, headers = signed(event("created"))
    r = await client.post("/webhooks/signed", content=raw, headers=headers)
    assert r.status_code == 202


@pytest.mark.parametrize("case", ["invalid", "missing", "stale", "wrong-secret", "tampered"])
async def test_bad_signatures_are_401(client: httpx.AsyncClient, db: Database, case: str) -> None:
    other = "whsec_" + base64.b64encode(b"another-secret-entirely").decode()
    raw, headers = signed(
        event("created"),
        at=datetime.now(UTC) - timedelta(minutes=10) if case == "stale" else None,
        secret=other if case == "wrong-secret" else SECRET,
    )
    if case == "invalid":
        headers["webhook-signature"] = "v1,AAAA" + headers["webhook-signature"][7:]
    if case == "missing":
        del headers["webhook-signature"]
    if case == "tampered":
        raw = raw.replace(b"Play games", b"Pay games")
    r = await client.post("/webhooks/signed", content=raw, headers=headers)
    assert r.status_code == 401
    assert r.json()["detail"].startswith("Invalid webhook signature")
    async with db.read_session() as session:
        [row] = (await session.scalars(select(WebhookDelivery))).all()
    assert row.outcome == "bad_signature" and row.status_code == 401
    r = await client.get("/tasks")
    assert r.json()["items"] == []


async def test_signed_redelivery_dedupes_on_webhook_id(client: httpx.AsyncClient) -> None:
    raw, headers = signed(event("created"), msg_id="msg_A")
    assert (await client.post("/webhooks/signed", content=raw, headers=headers)).status_code == 202
    raw2, headers2 = signed(event("created"), msg_id="msg_A")  # re-signed later, same id
    assert (
        await client.post("/webhooks/signed", content=raw2, headers=headers2)
    ).status_code == 202
    raw3, headers3 = signed(event("created"), msg_id="msg_B")  # a different delivery
    r = await client.post("/webhooks/signed", content=raw3, headers=headers3)
    assert r.status_code == 409


async def test_webhook_metrics(client: httpx.AsyncClient) -> None:
    await post(client, event("created"))
    text = (await client.get("/metrics")).text
    assert 'switchboard_webhook_deliveries_total{connection="todo",outcome="created"}' in text
    assert 'switchboard_tasks{state="open"} 1.0' in text


async def test_concurrent_deliveries_share_a_transaction_and_keep_their_semantics(
    client: httpx.AsyncClient, db: Database
) -> None:
    creates = [event("created", task=f"c{i}") for i in range(20)]
    # Each create twice (exact redeliveries), all at once: one batch or a few.
    answers = await asyncio.gather(*(post(client, body) for body in creates + creates))
    assert [r.status_code for r in answers] == [202] * 40
    async with db.read_session() as session:
        rows = (await session.scalars(select(WebhookDelivery))).all()
    outcomes = sorted(r.outcome for r in rows)
    assert outcomes == ["created"] * 20 + ["redelivery"] * 20
    r = await client.get("/tasks", params={"limit": 500})
    assert len(r.json()["items"]) == 20
    # Different outcomes within one batch.
    mixed = await asyncio.gather(
        post(client, event("updated", task="c1", ts="2025-04-02T00:00:00Z", isCompleted=True)),
        post(client, event("deleted", task="c2", ts="2025-04-02T00:00:00Z")),
        post(client, event("updated", task="missing")),
    )
    assert [r.status_code for r in mixed] == [202, 202, 404]
    assert (await task(client, "c1"))["state"] == "completed"
