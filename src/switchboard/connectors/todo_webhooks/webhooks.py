"""``POST /webhooks/{connection}`` for ``todo_webhooks`` connections: the Standard Webhooks
signature, then the event parsed into the task store's shape (``TodoEvent``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from switchboard.connectors.todo_webhooks.settings import TodoWebhooksConnection
from switchboard.db import Database
from switchboard.errors import Unauthorized
from switchboard.parsing import InvalidJson, parse_json
from switchboard.tasks.schemas import TodoEvent
from switchboard.tasks.service import Outcome
from switchboard.tasks.webhooks import Delivery, delivery_writer
from switchboard.webhooks import service as deliveries

if TYPE_CHECKING:
    from switchboard.config import Config, Connection


async def receive(
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

    result = await delivery_writer(request, db).submit(delivery)
    if result.body is None:
        return Response(status_code=result.status)
    return Response(
        json.dumps(result.body), status_code=result.status, media_type="application/json"
    )


def _invalid(errors: list[dict[str, Any]]) -> Outcome:
    return Outcome(422, "invalid", {"detail": jsonable_encoder(errors)})
