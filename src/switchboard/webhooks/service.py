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


async def already_applied(session: AsyncSession, connection: str, key: str) -> bool:
    found = await session.scalar(
        select(WebhookDelivery.id).where(
            WebhookDelivery.connection == connection, WebhookDelivery.dedupe_key == key
        )
    )
    return found is not None


async def record(
    session: AsyncSession,
    *,
    connection: str,
    body: bytes,
    status_code: int,
    outcome: str,
    response: Any = None,
    dedupe_key: str | None = None,
) -> None:
    """Log one delivery. ``dedupe_key`` is set only for deliveries whose effect was applied, so
    a redelivery of an event that failed (say, an update that arrived before its create) is
    processed again rather than answered from the log."""
    await session.execute(
        insert(WebhookDelivery).values(
            connection=connection,
            dedupe_key=dedupe_key or f"unapplied:{uuid.uuid4().hex}",
            received_at=utcnow(),
            body=body.decode("utf-8", errors="replace"),
            status_code=status_code,
            outcome=outcome,
            detail=None if response is None else json.dumps(response),
        )
    )
    metrics.WEBHOOK_DELIVERIES.labels(connection, outcome).inc()


async def record_rejected(
    db: Database, *, connection: str, body: bytes, outcome: str, response: Any
) -> None:
    async with db.session() as session:
        await record(
            session,
            connection=connection,
            body=body,
            status_code=401,
            outcome=outcome,
            response=response,
        )
