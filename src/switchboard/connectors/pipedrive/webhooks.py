"""``POST /webhooks/{connection}`` for Pipedrive connections: webhooks v1, HTTP Basic auth.

Pipedrive signs nothing: a webhook carries the user and password set on it as an
``Authorization: Basic`` header, checked here in constant time (when the connection sets
``webhook_user``/``webhook_password``). A v1 delivery is one event: ``{"v": 1, "event":
"updated.person", "meta": {"action", "object", "id", "timestamp", "timestamp_micro", ...},
"current", "previous", "retry"}``. Person events become the contact events the CRM receivers
log and apply (``switchboard.contacts.webhooks.apply``): one ``contacts.refresh`` job per person,
which re-reads it (a deleted one is stored deleted). Events about other objects are acknowledged
and ignored. A redelivery (``retry`` > 0) has the same key as the first delivery: no second
effect.

Echoes of the hub's own writes cost no re-read: an ``added.person`` is a creation, and an
``updated.person`` carries the person before and after, so it becomes one change event per
field of ours that differs (HubSpot's shape: one event per changed property), each the generic
echo form ``["changed", field, value]``; the apply leaves out those that equal what the hub last
wrote to the person (:func:`switchboard.contacts.tasks.own_writes`). An update that changes none
of our fields, a deletion and a merge are always read back.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from pydantic import SecretStr

from switchboard.connectors.crm import CrmContact
from switchboard.connectors.pipedrive.mapping import from_person
from switchboard.connectors.pipedrive.settings import PipedriveConnection
from switchboard.contacts.tasks import CHANGED, CREATED
from switchboard.contacts.webhooks import Event, apply
from switchboard.db import Database
from switchboard.errors import AppError, BadRequest, Unauthorized
from switchboard.parsing import InvalidJson, parse_json, same_signature
from switchboard.webhooks import service as deliveries

if TYPE_CHECKING:
    from switchboard.config import Config

MAX_ID = 200
"""Longest person id accepted (``contacts.external_id`` is ``VARCHAR(200)``)."""
MAX_MICROS = 2**62


class WebhookUnauthorized(Unauthorized):
    """Missing or wrong HTTP Basic credentials on a webhook delivery."""

    headers = {"WWW-Authenticate": 'Basic realm="switchboard webhooks"'}


def basic_auth_valid(header: str | None, user: SecretStr, password: SecretStr) -> bool:
    """Whether ``Authorization: Basic …`` carries exactly ``user``/``password``; both compared
    in constant time, whatever the first comparison found."""
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    given_user, colon, given_password = decoded.partition(b":")
    user_ok = same_signature(user.get_secret_value().encode(), given_user)
    password_ok = same_signature(password.get_secret_value().encode(), given_password)
    return bool(colon) and user_ok and password_ok


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= MAX_ID else None


def _micros(meta: dict[str, Any]) -> int | None:
    micro, seconds = meta.get("timestamp_micro"), meta.get("timestamp")
    if isinstance(micro, int) and not isinstance(micro, bool) and 0 <= micro < MAX_MICROS:
        return micro
    if (
        isinstance(seconds, int)
        and not isinstance(seconds, bool)
        and 0 <= seconds < MAX_MICROS // 10**6
    ):
        return seconds * 10**6
    return None


def _contact(person: dict[str, Any], custom: Mapping[str, str]) -> CrmContact | None:
    try:
        return from_person(person, "webhook", custom)
    except AppError:  # not a person we can read: no echo, the refresh reads it
        return None


def changes(
    current: dict[str, Any], previous: dict[str, Any], custom: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Our fields whose values differ between ``previous`` and ``current`` (an
    ``updated.person``'s two sides), with their new values."""
    after, before = _contact(current, custom or {}), _contact(previous, custom or {})
    if after is None or before is None:
        return {}
    return {
        name: value
        for name, value in after.fields.items()
        if value != before.fields.get(name) and (name in before.fields or value is not None)
    }


def person_events(body: bytes, custom: Mapping[str, str] | None = None) -> list[Event]:
    """The contact events of one v1 delivery (none for another object). ``custom``: the
    connection's custom fields (ours → person key), whose changes are ours too."""
    try:
        data = parse_json(body)
    except InvalidJson as exc:
        raise BadRequest(f"Body must be a webhooks v1 JSON object: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("meta"), dict):
        raise BadRequest("Body must be a webhooks v1 object with meta")
    if data.get("v", 1) != 1:
        raise BadRequest("Only webhooks v1 payloads are accepted")
    meta: dict[str, Any] = data["meta"]
    event = data.get("event")
    action, _, obj = event.partition(".") if isinstance(event, str) else ("", "", "")
    action = str(meta.get("action") or action)
    obj = str(meta.get("object") or obj)
    if obj != "person":
        return []
    current: dict[str, Any] = data["current"] if isinstance(data.get("current"), dict) else {}
    previous: dict[str, Any] = data["previous"] if isinstance(data.get("previous"), dict) else {}
    main = _id(meta.get("id")) or _id(current.get("id")) or _id(previous.get("id"))
    micros = _micros(meta)
    if main is None or micros is None:
        raise BadRequest("A person event needs meta.id and meta.timestamp")
    key = f"event:{action}.person:{main}:{micros}"
    at = micros // 1000
    if action == "added":
        return [Event(key, main, at, data, [CREATED, None, None])]
    if action == "updated" and current and previous:
        changed = changes(current, previous, custom)
        if changed:
            return [
                Event(f"{key}:{field}", main, at, data, [CHANGED, field, value])
                for field, value in sorted(changed.items())
            ]
    events = [Event(key, main, at, data)]
    if action == "merged":
        # The surviving person and the one merged into it: each refresh finds which is gone.
        for other in (current.get("id"), previous.get("id"), current.get("merge_what_id")):
            other_id = _id(other)
            if other_id is not None and all(e.external_id != other_id for e in events):
                events.append(Event(f"{key}:{other_id}", other_id, at, data))
    return events


async def receive_pipedrive(
    request: Request, name: str, conn: Any, db: Database, config: Config
) -> Response:
    if not isinstance(conn, PipedriveConnection):
        raise TypeError(f"{name} is not a Pipedrive connection")
    body = await request.body()
    if conn.webhook_user is not None and conn.webhook_password is not None:
        header = request.headers.get("authorization")
        if not basic_auth_valid(header, conn.webhook_user, conn.webhook_password):
            detail = "Missing or invalid HTTP Basic credentials"
            await deliveries.record_rejected(
                db, request, connection=name, body=body, outcome="bad_signature", response=detail
            )
            raise WebhookUnauthorized(detail)
    events = person_events(body, conn.custom_fields)
    if events:
        await apply(db, name, events)
    return Response(status_code=200)
