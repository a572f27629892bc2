"""``POST /webhooks/{connection}`` for mapped CRMs: the configured signature scheme (default
``X-Acme-Signature: sha256=<hex>`` over the body) and event shape (default one
``{event, id, payload}`` per delivery)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request, Response

from switchboard.connectors.mapped_crm.mapping import FieldMap, event_identity
from switchboard.connectors.mapped_crm.settings import MappedCrmConnection
from switchboard.connectors.mapped_crm.signature import verify_signature
from switchboard.contacts.webhooks import Event, apply, bounded_id, parse_body, reject
from switchboard.db import Database
from switchboard.errors import BadRequest

if TYPE_CHECKING:
    from switchboard.config import Config, Connection


async def receive(
    request: Request, name: str, conn: Connection, db: Database, config: Config
) -> Response:
    assert isinstance(conn, MappedCrmConnection)
    body = await request.body()
    if conn.webhook_secret is not None:
        refused = verify_signature(conn.signature, conn.webhook_secret, request.headers, body)
        if refused is not None:
            raise await reject(db, request, name, body, refused)
    data = parse_body(body, "a JSON object")
    fmap = FieldMap(name, dict(conn.fields), conn.id_field)
    event_id, record_id = (bounded_id(v) for v in event_identity(conn.webhook_events, fmap, data))
    if event_id is None or record_id is None:
        shape = conn.webhook_events
        raise BadRequest(f"Expected {{{shape.id_path}, {shape.record_path}: {{{conn.id_field}}}}}")
    event = Event(f"event:{event_id}", record_id, None, data)
    await apply(db, name, [event])
    return Response(status_code=200)
