"""``POST /webhooks/{connection}`` for ``todo_webhooks`` connections."""

from __future__ import annotations

import json

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from switchboard.config import Config, Connection, TodoWebhooksConnection
from switchboard.db import Database, lock_key
from switchboard.errors import Unauthorized
from switchboard.tasks.schemas import TodoEvent
from switchboard.tasks.service import Outcome, apply_event
from switchboard.webhooks import receiver
from switchboard.webhooks import service as deliveries


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
        event: TodoEvent | None = TodoEvent.model_validate_json(body)
    except ValidationError as exc:
        event = None
        errors = [
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        result = Outcome(422, "invalid", {"detail": jsonable_encoder(errors)})

    async with db.session() as session:
        if event is not None:
            # Every event of one task is serialised across processes, redeliveries included.
            await lock_key(session, f"task:{name}:{event.metadata.id}")
            if await deliveries.already_applied(session, name, key):
                result = Outcome(202, "redelivery")
            else:
                result = await apply_event(session, name, event)
        await deliveries.record(
            session,
            connection=name,
            body=body,
            status_code=result.status,
            outcome=result.outcome,
            response=result.body,
            dedupe_key=key if result.applied and result.outcome != "redelivery" else None,
        )
    if result.body is None:
        return Response(status_code=result.status)
    return Response(
        json.dumps(result.body), status_code=result.status, media_type="application/json"
    )
