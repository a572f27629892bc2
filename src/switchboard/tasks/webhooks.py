"""``POST /webhooks/{connection}`` for ``todo_webhooks`` connections.

Each request is verified and validated on its own; the state changes of concurrent requests are
then applied together in one transaction (group commit, ``switchboard.batching``), in arrival
order, and every request is answered after that commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from switchboard.batching import BatchWriter
from switchboard.config import Config, Connection, TodoWebhooksConnection
from switchboard.db import Database, lock_keys
from switchboard.errors import Unauthorized
from switchboard.tasks import service
from switchboard.tasks.schemas import TodoEvent
from switchboard.tasks.service import Outcome
from switchboard.webhooks import receiver
from switchboard.webhooks import service as deliveries


@dataclass(frozen=True)
class Delivery:
    connection: str
    key: str
    body: bytes
    event: TodoEvent | None
    invalid: Outcome | None = None


async def apply_deliveries(session: AsyncSession, items: list[Delivery]) -> list[Outcome]:
    """Apply deliveries in order: dedupe, the task state machine, the delivery log."""
    refs = {(d.connection, d.event.metadata.id) for d in items if d.event is not None}
    # Every event of one task is serialised across processes, redeliveries included.
    await lock_keys(session, (f"task:{conn}:{task_id}" for conn, task_id in refs))
    applied = await deliveries.applied_keys(
        session, {(d.connection, d.key) for d in items if d.event is not None}
    )
    tasks = await service.load_tasks(session, refs)
    outcomes: list[Outcome] = []
    rows = []
    for d in items:
        if d.event is None:
            assert d.invalid is not None
            outcome = d.invalid
        elif (d.connection, d.key) in applied:
            outcome = Outcome(202, "redelivery")
        else:
            ref = (d.connection, d.event.metadata.id)
            outcome, created = service.apply_event(tasks.get(ref), d.connection, d.event)
            if created is not None:
                session.add(created)
                tasks[ref] = created
            if outcome.applied:
                applied.add((d.connection, d.key))
        first_application = outcome.applied and outcome.outcome != "redelivery"
        rows.append(
            deliveries.delivery_row(
                connection=d.connection,
                body=d.body,
                status_code=outcome.status,
                outcome=outcome.outcome,
                response=outcome.body,
                dedupe_key=d.key if first_application else None,
            )
        )
        outcomes.append(outcome)
    await session.flush()
    await deliveries.record(session, rows)
    return outcomes


def _writer(request: Request, db: Database) -> BatchWriter[Delivery, Outcome]:
    writer: BatchWriter[Delivery, Outcome] | None = getattr(request.app.state, "todo_writer", None)
    if writer is None or writer.db is not db:
        writer = BatchWriter(db, apply_deliveries)
        request.app.state.todo_writer = writer
    return writer


@receiver("todo_webhooks")
async def receive_todo(
    request: Request, name: str, conn: Connection, db: Database, config: Config
) -> Response:
    assert isinstance(conn, TodoWebhooksConnection)
    body = await request.body()
    if conn.secret is not None:
        try:
            # Standard Webhooks: HMAC over "id.timestamp.body", timestamp within 5 minutes.
            Webhook(conn.secret.get_secret_value()).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            detail = f"Invalid webhook signature: {exc}"
            await deliveries.record_rejected(
                db, connection=name, body=body, outcome="bad_signature", response=detail
            )
            raise Unauthorized(detail) from None
        key = "webhook-id:" + request.headers["webhook-id"]
    else:
        key = deliveries.body_key(body)

    try:
        delivery = Delivery(name, key, body, TodoEvent.model_validate_json(body))
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        invalid = Outcome(422, "invalid", {"detail": jsonable_encoder(errors)})
        delivery = Delivery(name, key, body, None, invalid)

    result = await _writer(request, db).submit(delivery)
    if result.body is None:
        return Response(status_code=result.status)
    return Response(
        json.dumps(result.body), status_code=result.status, media_type="application/json"
    )
