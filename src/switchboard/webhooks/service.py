"""The delivery log shared by every webhook source."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard import metrics
from switchboard.db import Database, utcnow
from switchboard.models import WebhookDelivery


def body_key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


async def applied_keys(session: AsyncSession, refs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which ``(connection, dedupe key)`` pairs name deliveries already applied."""
    if not refs:
        return set()
    rows = await session.execute(
        select(WebhookDelivery.connection, WebhookDelivery.dedupe_key).where(
            WebhookDelivery.dedupe_key.in_({key for _, key in refs}),
            WebhookDelivery.connection.in_({conn for conn, _ in refs}),
        )
    )
    return {(conn, key) for conn, key in rows.all() if (conn, key) in refs}


def delivery_row(
    *,
    connection: str,
    body: bytes,
    status_code: int,
    outcome: str,
    response: Any = None,
    dedupe_key: str | None = None,
) -> dict[str, Any]:
    """One delivery for :func:`record`. ``dedupe_key`` is set only for deliveries whose effect
    was applied, so a redelivery of an event that failed (say, an update that arrived before its
    create) is processed again rather than answered from the log."""
    return {
        "connection": connection,
        "dedupe_key": dedupe_key or f"unapplied:{uuid.uuid4().hex}",
        "received_at": utcnow(),
        "body": body.decode("utf-8", errors="replace"),
        "status_code": status_code,
        "outcome": outcome,
        "detail": None if response is None else json.dumps(response),
    }


async def record(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Log deliveries (one statement)."""
    if not rows:
        return
    await session.execute(insert(WebhookDelivery), rows)
    for row in rows:
        metrics.WEBHOOK_DELIVERIES.labels(row["connection"], row["outcome"]).inc()


async def record_rejected(
    db: Database, *, connection: str, body: bytes, outcome: str, response: Any
) -> None:
    async with db.session() as session:
        await record(
            session,
            [
                delivery_row(
                    connection=connection,
                    body=body,
                    status_code=401,
                    outcome=outcome,
                    response=response,
                )
            ],
        )
