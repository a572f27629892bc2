"""``POST /webhooks/{connection}`` for ``todo_webhooks`` connections.

Each request is verified and validated on its own; the state changes of concurrent requests are
then applied together in one transaction (group commit, ``switchboard.batching``), in arrival
order, and every request is answered after that commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from switchboard.batching import BatchWriter
from switchboard.changes import kinds as changes
from switchboard.config import Config, Connection, TodoWebhooksConnection
from switchboard.db import Database, lock_keys
from switchboard.errors import Unauthorized
from switchboard.parsing import InvalidJson, parse_json
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
    client: str | None = None


async def apply_deliveries(
    session: AsyncSession, items: list[Delivery], log: deliveries.RejectedLog | None = None
) -> list[Outcome]:
    """Apply deliveries in order: dedupe, the task state machine, the delivery log (a delivery
    that is not applied is logged within ``log``'s bounds)."""
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
                task = service.to_out(tasks[ref]).model_dump(mode="json")
                await changes.task_changed(session, outcome.outcome, task)
        outcomes.append(outcome)
        if not outcome.applied and log is not None and not log.admit(d.connection, d.client):
            continue
        first_application = outcome.applied and outcome.outcome != "redelivery"
        rows.append(
            deliveries.delivery_row(
                connection=d.connection,
                body=d.body,
                status_code=outcome.status,
                outcome=outcome.outcome,
                response=outcome.body,
                dedupe_key=d.key if first_application else None,
                client=d.client,
                keep_body=None if outcome.applied or log is None else log.body_bytes,
            )
        )
    await session.flush()
    await deliveries.record(session, rows)
    return outcomes


def _writer(request: Request, db: Database) -> BatchWriter[Delivery, Outcome]:
    writer: BatchWriter[Delivery, Outcome] | None = getattr(request.app.state, "todo_writer", None)
    if writer is None or writer.db is not db:
        log = deliveries.rejected_log(request)

        async def apply(session: AsyncSession, items: list[Delivery]) -> list[Outcome]:
            return await apply_deliveries(session, items, log)

        writer = BatchWriter(db, apply)
        request.app.state.todo_writer = writer
    return writer


@receiver("todo_webhooks")
async def receive_todo(
    request: Request, name: str, conn: Connection, db: Database, config: Config
) -> Response:
    assert isinstance(conn, TodoWebhooksConnection)
    body = await request.body()
    client = deliveries.client_address(request)
    if conn.secret is not None:
        try:
            # Standard Webhooks: HMAC over "id.timestamp.body", timestamp within 5 minutes. The
            # body is parsed below, by the hub's own parser (the library's raises on bad JSON).
            Webhook(conn.secret.get_secret_value()).verify(
                body, dict(request.headers), json_parse=False
            )
        except WebhookVerificationError as exc:
            detail = f"Invalid webhook signature: {exc}"
            await deliveries.record_rejected(
                db, request, connection=name, body=body, outcome="bad_signature", response=detail
            )
            raise Unauthorized(detail) from None
        key = "webhook-id:" + request.headers["webhook-id"]
    else:
        key = deliveries.body_key(body)

    try:
        event = TodoEvent.model_validate(parse_json(body))
    except InvalidJson as exc:
        errors: list[dict[str, Any]] = [{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}]
        delivery = Delivery(name, key, body, None, _invalid(errors), client)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        delivery = Delivery(name, key, body, None, _invalid(errors), client)
    else:
        delivery = Delivery(name, key, body, event, client=client)

    result = await _writer(request, db).submit(delivery)
    if result.body is None:
        return Response(status_code=result.status)
    return Response(
        json.dumps(result.body), status_code=result.status, media_type="application/json"
    )


def _invalid(errors: list[dict[str, Any]]) -> Outcome:
    return Outcome(422, "invalid", {"detail": jsonable_encoder(errors)})
