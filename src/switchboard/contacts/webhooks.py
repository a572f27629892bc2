"""``POST /webhooks/{connection}`` for CRM connections: HubSpot (signature v3) and mapped CRMs
(their configured signature scheme; default ``X-Acme-Signature: sha256=<hex>``).

A delivery is verified on the raw bytes, each event is logged raw in the delivery log (deduped
on the event's identity, so redeliveries and duplicates have no second effect) and a
``contacts.refresh`` job is enqueued per contact in the same transaction, in ``occurredAt``
order; the answer (200) follows that one commit. The jobs re-read the contacts from the CRM.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from pydantic import SecretStr

from switchboard.config import Config, Connection, HubSpotConnection, MappedCrmConnection
from switchboard.connectors.mapped_crm.mapping import FieldMap, event_identity
from switchboard.connectors.mapped_crm.signature import verify_signature
from switchboard.contacts.tasks import (
    ECHO_SETTLE,
    EVENT_JOB,
    echo_form,
    event_job_key,
    own_writes,
)
from switchboard.db import Database, lock_keys, utcnow
from switchboard.errors import BadRequest, Unauthorized
from switchboard.jobs import enqueue, queue
from switchboard.parsing import InvalidJson, ascii_int, parse_json, same_signature
from switchboard.webhooks import receiver
from switchboard.webhooks import service as deliveries

MAX_AGE_MS = 5 * 60 * 1000
"""HubSpot: reject a request whose timestamp is older than 5 minutes (replays)."""
MAX_ID = 200
"""Longest object id accepted (``contacts.external_id`` is ``VARCHAR(200)``)."""
MAX_MS = 2**53
"""``occurredAt`` beyond this is not an epoch time in milliseconds (nor exact in JSON)."""


@dataclass(frozen=True)
class Event:
    key: str
    external_id: str
    occurred_at: int | None
    raw: Any


async def _reject(
    db: Database, request: Request, name: str, body: bytes, detail: str
) -> Unauthorized:
    await deliveries.record_rejected(
        db, request, connection=name, body=body, outcome="bad_signature", response=detail
    )
    return Unauthorized(detail)


def hubspot_v3_valid(
    secret: SecretStr, method: str, uri: str, body: bytes, timestamp: str, signature: str
) -> bool:
    message = method.encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).digest()
    return same_signature(base64.b64encode(digest), signature.strip())


def _json(body: bytes, expected: str) -> Any:
    try:
        return parse_json(body)
    except InvalidJson as exc:
        raise BadRequest(f"Body must be {expected}: {exc}") from None


def _id(value: Any) -> str | None:
    """An object id as HubSpot and CRMs send them: a string or an integer, of bounded size."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= MAX_ID else None


def hubspot_events(body: bytes) -> list[Event]:
    """HubSpot's event array; each event keyed on subscriptionId + eventId + objectId +
    occurredAt (``eventId`` alone is not unique, HUBSPOT.md)."""
    data = _json(body, "a JSON array of events")
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise BadRequest("Body must be a JSON array of events")
    events = []
    for item in data:
        object_id = _id(item.get("objectId")) if isinstance(item, dict) else None
        if not isinstance(item, dict) or object_id is None:
            raise BadRequest("Every event needs an objectId")
        kind = item.get("subscriptionType") or item.get("eventType") or ""
        occurred = item.get("occurredAt")
        if (
            isinstance(occurred, bool)
            or not isinstance(occurred, int)
            or not 0 <= occurred < MAX_MS
        ):
            raise BadRequest("Every event needs occurredAt (epoch ms)")
        key = ":".join(
            str(item.get(k)) for k in ("subscriptionId", "eventId", "objectId", "occurredAt")
        )
        events.append(Event(f"event:{kind}:{key}", object_id, occurred, item))
        if kind == "contact.merge":
            # objectId is the contact that remains; the merged ones are archived in HubSpot
            # (their refresh finds them archived and deletes them here).
            merged = item.get("mergedObjectIds")
            for other in merged if isinstance(merged, list) else []:
                other_id = _id(other)
                if other_id is not None and other_id != object_id:
                    events.append(Event(f"event:{kind}:{key}:{other_id}", other_id, occurred, item))
    return events


async def apply(db: Database, name: str, events: list[Event], *, own_events: bool = False) -> None:
    """Log new events and enqueue their refresh jobs, in one transaction. ``own_events``:
    the events are HubSpot's, and those echoing the hub's own writes are left out."""
    async with db.session() as session:
        keys = {e.key for e in events}
        # Concurrent redeliveries of one event are serialised (PostgreSQL; SQLite has one writer).
        await lock_keys(session, (f"webhook:{name}:{k}" for k in keys))
        applied = await deliveries.applied_keys(session, {(name, k) for k in keys})
        rows = []
        fresh: list[Event] = []
        for event in events:
            new = (name, event.key) not in applied
            applied.add((name, event.key))
            rows.append(
                deliveries.delivery_row(
                    connection=name,
                    body=json.dumps(event.raw, separators=(",", ":")).encode(),
                    status_code=200,
                    outcome="accepted" if new else "duplicate",
                    dedupe_key=event.key if new else None,
                )
            )
            if new:
                fresh.append(event)
        await deliveries.record(session, rows)
        if fresh and own_events:
            # The CRM tells us about our own writes too: those need no re-read.
            forms = {e.key: echo_form(e.raw) for e in fresh}
            echoes = await own_writes(
                session,
                name,
                [(e.key, e.external_id, f) for e in fresh if (f := forms[e.key]) is not None],
            )
            fresh = [e for e in fresh if e.key not in echoes]
        by_contact: dict[str, list[Event]] = {}
        for event in fresh:
            by_contact.setdefault(event.external_id, []).append(event)
        if not by_contact:
            return
        job_keys = {c: event_job_key(name, c) for c in by_contact}
        # Concurrent deliveries about one contact merge their events one after the other.
        await lock_keys(session, job_keys.values())
        pending = await queue.pending_payloads(session, EVENT_JOB, list(job_keys.values()))
        now = utcnow()
        # occurredAt order across contacts: a contact's job waits behind its running one.
        for contact, group in sorted(
            by_contact.items(), key=lambda item: max(e.occurred_at or 0 for e in item[1])
        ):
            forms_ = [echo_form(e.raw) if own_events else None for e in group]
            earlier = pending.get(job_keys[contact])
            echo_events: list[Any] | None = None
            if all(f is not None for f in forms_) and (
                earlier is None or isinstance(earlier.get("events"), list)
            ):
                # Might still be an echo whose write is being recorded: the job looks again
                # after a moment (and reads the contact unless every event is an echo).
                echo_events = [*(earlier or {}).get("events", []), *forms_]
            await enqueue(
                session,
                EVENT_JOB,
                {
                    "connection": name,
                    "external_id": contact,
                    "occurred_at": max(e.occurred_at or 0 for e in group) or None,
                    "events": echo_events,
                },
                key=job_keys[contact],
                coalesce=True,
                run_at=now + ECHO_SETTLE if echo_events is not None else None,
            )


@receiver("hubspot")
async def receive_hubspot(
    request: Request, name: str, conn: Connection, db: Database, config: Config
) -> Response:
    assert isinstance(conn, HubSpotConnection)
    body = await request.body()
    if conn.webhook_secret is not None:
        signature = request.headers.get("x-hubspot-signature-v3")
        timestamp = request.headers.get("x-hubspot-request-timestamp", "")
        at_ms = ascii_int(timestamp)
        if not signature or at_ms is None:
            raise await _reject(
                db, request, name, body, "Missing X-HubSpot-Signature-v3 or timestamp"
            )
        if abs(time.time() * 1000 - at_ms) > MAX_AGE_MS:
            raise await _reject(db, request, name, body, "Stale X-HubSpot-Request-Timestamp")
        # The signed URI is the URL as HubSpot called it: scheme, host, path and query.
        uri = str(request.url)
        if not hubspot_v3_valid(conn.webhook_secret, "POST", uri, body, timestamp, signature):
            raise await _reject(db, request, name, body, "Invalid X-HubSpot-Signature-v3")
    await apply(db, name, hubspot_events(body), own_events=True)
    return Response(status_code=200)


@receiver("mapped_crm")
async def receive_mapped(
    request: Request, name: str, conn: Connection, db: Database, config: Config
) -> Response:
    assert isinstance(conn, MappedCrmConnection)
    body = await request.body()
    if conn.webhook_secret is not None:
        refused = verify_signature(conn.signature, conn.webhook_secret, request.headers, body)
        if refused is not None:
            raise await _reject(db, request, name, body, refused)
    data = _json(body, "a JSON object")
    fmap = FieldMap(name, dict(conn.fields), conn.id_field)
    event_id, record_id = (_id(v) for v in event_identity(conn.webhook_events, fmap, data))
    if event_id is None or record_id is None:
        shape = conn.webhook_events
        raise BadRequest(f"Expected {{{shape.id_path}, {shape.record_path}: {{{conn.id_field}}}}}")
    event = Event(f"event:{event_id}", record_id, None, data)
    await apply(db, name, [event])
    return Response(status_code=200)
