"""``POST /webhooks/{connection}`` for mapped CRMs: ``X-Acme-Signature: sha256=<hex>`` over the
body, one ``{event, id, payload}`` per delivery."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from fastapi import Request, Response

from switchboard.connectors.mapped_crm.settings import MappedCrmConnection
from switchboard.contacts.webhooks import Event, apply, bounded_id, parse_body, reject
from switchboard.db import Database
from switchboard.errors import BadRequest
from switchboard.parsing import same_signature

if TYPE_CHECKING:
    from switchboard.config import Config, Connection


async def receive(
    request: Request, name: str, conn: Connection, db: Database, config: Config
) -> Response:
    assert isinstance(conn, MappedCrmConnection)
    body = await request.body()
    if conn.webhook_secret is not None:
        presented = request.headers.get("x-acme-signature", "")
        digest = hmac.new(conn.webhook_secret.get_secret_value().encode(), body, hashlib.sha256)
        if not same_signature("sha256=" + digest.hexdigest(), presented.strip()):
            raise await reject(db, request, name, body, "Invalid X-Acme-Signature")
    data = parse_body(body, "a JSON object")
    payload = data.get("payload") if isinstance(data, dict) else None
    record_id = bounded_id(payload.get(conn.id_field)) if isinstance(payload, dict) else None
    event_id = bounded_id(data.get("id")) if isinstance(data, dict) else None
    if event_id is None or record_id is None:
        raise BadRequest(f"Expected {{event, id, payload: {{{conn.id_field}, ...}}}}")
    event = Event(f"event:{event_id}", record_id, None, data)
    await apply(db, name, [event])
    return Response(status_code=200)
