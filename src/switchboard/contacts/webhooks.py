"""What every CRM's webhook receiver shares (each provider's receiver, its signature check and
event parsing, is in ``connectors/<provider>/webhooks.py``).

A delivery is verified on the raw bytes, each event is logged raw in the delivery log (deduped
on the event's identity, so redeliveries and duplicates have no second effect) and a
``contacts.refresh`` job is enqueued per contact in the same transaction, in ``occurredAt``
order; the answer (200) follows that one commit. The jobs re-read the contacts from the CRM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from switchboard.contacts.tasks import ECHO_SETTLE, EVENT_JOB, Echo, event_job_key, own_writes
from switchboard.db import Database, lock_keys, utcnow
from switchboard.errors import BadRequest, Unauthorized
from switchboard.jobs import enqueue, queue
from switchboard.parsing import InvalidJson, parse_json
from switchboard.webhooks import service as deliveries

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
    echo: Echo | None = None
    """How the event may echo the hub's own write (:data:`~switchboard.contacts.tasks.Echo`)."""


async def reject(
    db: Database, request: Request, name: str, body: bytes, detail: str
) -> Unauthorized:
    await deliveries.record_rejected(
        db, request, connection=name, body=body, outcome="bad_signature", response=detail
    )
    return Unauthorized(detail)


def parse_body(body: bytes, expected: str) -> Any:
    try:
        return parse_json(body)
    except InvalidJson as exc:
        raise BadRequest(f"Body must be {expected}: {exc}") from None


def bounded_id(value: Any) -> str | None:
    """An object id as CRMs send them: a string or an integer, of bounded size."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= MAX_ID else None


async def apply(db: Database, name: str, events: list[Event]) -> None:
    """Log new events and enqueue their refresh jobs, in one transaction. Events that echo the
    hub's own writes (``Event.echo``) are left out."""
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
        if any(e.echo is not None for e in fresh):
            # The CRM tells us about our own writes too: those need no re-read.
            echoes = await own_writes(
                session, name, [(e.key, e.external_id, e.echo) for e in fresh if e.echo]
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
            forms_ = [e.echo for e in group]
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
