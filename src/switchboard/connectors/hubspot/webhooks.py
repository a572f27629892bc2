"""``POST /webhooks/{connection}`` for HubSpot connections: signature v3 and HubSpot's events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from pydantic import SecretStr

from switchboard.connectors.hubspot.mapping import FROM_HUBSPOT
from switchboard.connectors.hubspot.settings import HubSpotConnection
from switchboard.contacts.tasks import CHANGED, CREATED, Echo
from switchboard.contacts.webhooks import MAX_MS, Event, apply, bounded_id, parse_body, reject
from switchboard.db import Database
from switchboard.errors import BadRequest
from switchboard.parsing import ascii_int, same_signature
from switchboard.webhooks import service as deliveries

if TYPE_CHECKING:
    from switchboard.config import Config, Connection
    from switchboard.webhooks.receivers import AppConnections

MAX_AGE_MS = 5 * 60 * 1000
"""Reject a request whose timestamp is older than 5 minutes (replays)."""


def hubspot_v3_valid(
    secret: SecretStr, method: str, uri: str, body: bytes, timestamp: str, signature: str
) -> bool:
    message = method.encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).digest()
    return same_signature(base64.b64encode(digest), signature.strip())


def echo_form(event: dict[str, Any]) -> Echo | None:
    """How the event may echo the hub's own write: a creation, or a property change of one of
    our fields (a deletion, merge or restore is always read back)."""
    kind = event.get("subscriptionType") or event.get("eventType")
    if kind == "contact.creation":
        return [CREATED, None, None]
    if kind == "contact.propertyChange":
        ours = FROM_HUBSPOT.get(str(event.get("propertyName")))
        return None if ours is None else [CHANGED, ours, event.get("propertyValue")]
    return None


def hubspot_events(body: bytes) -> list[Event]:
    """HubSpot's event array; each event keyed on subscriptionId + eventId + objectId +
    occurredAt (``eventId`` alone is not unique, HUBSPOT.md)."""
    data = parse_body(body, "a JSON array of events")
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise BadRequest("Body must be a JSON array of events")
    events = []
    for item in data:
        object_id = bounded_id(item.get("objectId")) if isinstance(item, dict) else None
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
        events.append(Event(f"event:{kind}:{key}", object_id, occurred, item, echo_form(item)))
        if kind == "contact.merge":
            # objectId is the contact that remains; the merged ones are archived in HubSpot
            # (their refresh finds them archived and deletes them here).
            merged = item.get("mergedObjectIds")
            for other in merged if isinstance(merged, list) else []:
                other_id = bounded_id(other)
                if other_id is not None and other_id != object_id:
                    events.append(Event(f"event:{kind}:{key}:{other_id}", other_id, occurred, item))
    return events


async def _verified(
    request: Request, name: str, body: bytes, secrets: list[SecretStr], db: Database
) -> int:
    """Check signature v3 against each candidate secret; the index of the one that signed
    (the app, for the provider-level endpoint)."""
    signature = request.headers.get("x-hubspot-signature-v3")
    timestamp = request.headers.get("x-hubspot-request-timestamp", "")
    at_ms = ascii_int(timestamp)
    if not signature or at_ms is None:
        raise await reject(db, request, name, body, "Missing X-HubSpot-Signature-v3 or timestamp")
    if abs(time.time() * 1000 - at_ms) > MAX_AGE_MS:
        raise await reject(db, request, name, body, "Stale X-HubSpot-Request-Timestamp")
    # The signed URI is the URL as HubSpot called it: scheme, host, path and query.
    uri = str(request.url)
    matches = [
        hubspot_v3_valid(secret, "POST", uri, body, timestamp, signature) for secret in secrets
    ]  # every one compared, so the time taken does not tell which matched
    if not any(matches):
        raise await reject(db, request, name, body, "Invalid X-HubSpot-Signature-v3")
    return matches.index(True)


async def receive(
    request: Request, name: str, conn: Connection, db: Database, config: Config
) -> Response:
    assert isinstance(conn, HubSpotConnection)
    body = await request.body()
    if conn.webhook_secret is not None:
        await _verified(request, name, body, [conn.webhook_secret], db)
    await apply(db, name, hubspot_events(body))
    return Response(status_code=200)


async def receive_for_app(
    request: Request, apps: list[AppConnections], db: Database, config: Config
) -> Response:
    """``POST /webhooks/providers/hubspot``: one endpoint for a HubSpot app's webhooks, whatever
    the portal. The signature (the app's secret) says which app sent the batch; each event goes
    to that app's connections of its ``portalId``. Events of a portal no connection has are
    logged as unrouted and acknowledged (HubSpot would retry them for a day for nothing)."""
    body = await request.body()
    name = "providers:hubspot"
    signed = [app for app in apps if app.secret is not None]
    if not signed:
        raise await reject(db, request, name, body, "No HubSpot integration has a webhook secret")
    app = signed[await _verified(request, name, body, [a.secret for a in signed if a.secret], db)]
    by_portal: dict[str, list[Event]] = {}
    for event in hubspot_events(body):
        portal = event.raw.get("portalId") if isinstance(event.raw, dict) else None
        by_portal.setdefault(str(portal), []).append(event)
    unrouted = 0
    for portal, events in by_portal.items():
        targets = app.connections.get(portal, [])
        if not targets:
            unrouted += len(events)
            await deliveries.record_rejected(
                db,
                request,
                connection=name,
                body=json.dumps([e.raw for e in events]).encode(),
                outcome="unrouted",
                response=f"no connection of integration {app.integration!r} has portal {portal}",
                status_code=200,
            )
        for target in targets:
            await apply(db, target, events)
    return Response(status_code=200)
