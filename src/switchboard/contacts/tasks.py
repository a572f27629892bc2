"""The job that applies a CRM webhook event: re-read the contact, store what the CRM says now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.connectors.crm import CrmContact, CrmContacts, KeepsArchive, crm_client
from switchboard.contacts import service
from switchboard.http import Outbound
from switchboard.jobs import JobContext, RetryLater
from switchboard.models import Job, User
from switchboard.users.service import JOB_KIND as USERS_JOB

EVENT_JOB = "contacts.refresh"
"""Re-read one contact from its CRM and store what the CRM says now. Payload ``{"connection",
"external_id", "occurred_at"?}`` (epoch ms of the newest event that asked for it)."""


def event_job_key(connection: str, external_id: str) -> str:
    return f"contact:{connection}:{external_id}"


REFRESH_BATCH = 100
"""Contacts re-read per run (a CRM's batch read takes about 100 ids)."""
REFRESH_CONCURRENCY = 4
"""Refresh batches one worker runs at once: a rate-limited CRM must not take every slot."""


async def refresh(jobs: list[JobContext]) -> None:
    """Events are not applied from their payloads: they arrive unordered, duplicated and
    partial, so the job reads the contacts' current state, many with one batch read. Jobs of one
    contact share a key (one at a time, coalesced), and the store refuses anything older than
    what it holds."""
    by_connection: dict[str, list[JobContext]] = {}
    for ctx in jobs:
        by_connection.setdefault(str(ctx.payload["connection"]), []).append(ctx)
    ctx0 = jobs[0]
    outbound = ctx0.outbound or Outbound.for_database(ctx0.db)
    own = outbound is None
    if outbound is None:
        outbound = Outbound(ctx0.config, ctx0.db)
    try:
        for name, group in by_connection.items():
            if ctx0.config.connection(name) is None:
                continue  # removed from the configuration since the event arrived
            crm = crm_client(outbound, ctx0.config, name, mode="job")
            await _refresh(crm, name, group)
    finally:
        if own:
            await outbound.aclose()


async def _refresh(crm: CrmContacts, name: str, group: list[JobContext]) -> None:
    ctx0 = group[0]
    group = await _not_echoes(name, group)
    if not group:
        return
    ids = [str(ctx.payload["external_id"]) for ctx in group]
    try:
        found = await crm.read_many(ids)
    except Exception as exc:  # the read failed as a whole: every job of it is retried
        for ctx in group:
            ctx.fail(exc)
        return
    if found:
        async with ctx0.db.session() as session:
            await service.store_many(session, name, found.values())
    for ctx, external_id in zip(group, ids, strict=True):
        if external_id not in found:
            try:
                await _gone(ctx, crm, name, external_id)
            except Exception as exc:
                ctx.fail(exc)


ECHO_PATIENCE = timedelta(seconds=10)
"""How long after its event a possible echo waits for user writes still being recorded."""


async def _not_echoes(name: str, group: list[JobContext]) -> list[JobContext]:
    """The jobs whose events are not all echoes of the hub's own writes (those need no read).
    A job without ``events`` (a deletion, a mapped CRM's event) is always read. A possible echo
    (a creation or property change) that matches nothing yet while users' CRM writes are still
    running waits a moment more (``RetryLater``), up to :data:`ECHO_PATIENCE` after its event:
    under load the write's record can commit after its webhook arrives."""
    events = [
        (f"{ctx.id}:{i}", str(ctx.payload["external_id"]), event)
        for ctx in group
        if isinstance(ctx.payload.get("events"), list)
        for i, event in enumerate(ctx.payload["events"])
    ]
    if not events:
        return group
    async with group[0].db.read_session() as session:
        echoes = await own_writes(session, name, events)
        writing = bool(
            await session.scalar(
                select(exists().where(Job.state == "running", Job.kind == USERS_JOB))
            )
        )
    now = datetime.now(UTC)
    remaining = []
    for ctx in group:
        found = ctx.payload.get("events")
        if not isinstance(found, list) or not found:
            remaining.append(ctx)
        elif all(f"{ctx.id}:{i}" in echoes for i in range(len(found))):
            continue  # only echoes: nothing to read
        elif writing and _recent(ctx.payload.get("occurred_at"), now):
            ctx.fail(RetryLater(1.0, "waiting for the hub's own CRM writes to be recorded"))
        else:
            remaining.append(ctx)
    return remaining


def _recent(occurred_at: Any, now: datetime) -> bool:
    if not isinstance(occurred_at, int):
        return False
    return now - datetime.fromtimestamp(occurred_at / 1000, UTC) < ECHO_PATIENCE


async def _gone(ctx: JobContext, crm: CrmContacts, name: str, external_id: str) -> None:
    """The CRM does not hold the contact live: store it deleted."""
    deleted: CrmContact | None = None
    if isinstance(crm, KeepsArchive):
        deleted = await crm.get_archived(external_id)
    async with ctx.db.session() as session:
        if deleted is None:
            stored = await service.by_external(session, name, external_id)
            if stored is None or stored.deleted_at is not None:
                return
            # Gone without a trace (a privacy deletion, a mapped CRM's delete): the event's
            # time is the deletion time.
            occurred = ctx.payload.get("occurred_at")
            at = datetime.fromtimestamp(int(occurred) / 1000, UTC) if occurred is not None else None
            base = service.as_crm(stored)
            deleted = CrmContact(
                external_id=external_id,
                fields=base.fields,
                created_at=base.created_at,
                updated_at=max(at, stored.updated_at) if at and stored.updated_at else at,
                archived=True,
                raw=base.raw,
            )
        await service.store(session, name, [deleted], deleted=True)


ECHO_SETTLE = timedelta(seconds=1)
"""How long a refresh that may only echo the hub's own write waits before it decides: the
write's record (``users.propagate``) may commit just after the CRM's webhook about it arrives."""

Echo = list[Any]
"""How an event may echo the hub's own write: ``["created", None, None]`` (a contact was
created) or ``["changed", field, value]`` (one of our fields got that value). Each provider's
webhook parser gives its events this form (``Event.echo``); None: never an echo (a deletion,
merge or restore is always read back)."""
CREATED, CHANGED = "created", "changed"


async def own_writes(
    session: AsyncSession, connection: str, events: Sequence[tuple[str, str, Echo]]
) -> set[str]:
    """The keys of the events (``(key, contact id, echo form)``) that only echo what the hub
    itself last wrote to the contact (``users.propagate``): a creation of a contact a user is
    synced to, or a property change to the very value the user's contact was given. Re-reading
    the contact would cost a provider call to learn nothing: what was written is in the store."""
    wanted = {contact for _, contact, _ in events}
    if not wanted:
        return set()
    rows = await session.execute(
        select(User.crm_contact_id, User.synced_fields).where(
            User.crm_connection == connection, User.crm_contact_id.in_(wanted)
        )
    )
    written: dict[str, list[dict[str, Any]]] = {}
    for contact_id, fields in rows.all():
        written.setdefault(str(contact_id), []).append(dict(fields or {}))
    echoes = set()
    for key, contact, (kind, name, value) in events:
        given = written.get(contact)
        if not given:
            continue
        if kind == CREATED or (
            kind == CHANGED
            and name is not None
            and any(_text(f.get(name), name) == _text(value, name) for f in given)
        ):
            echoes.add(key)
    return echoes


def _text(value: Any, field: str | None) -> str:
    text = "" if value is None else str(value)
    return text.strip().lower() if field == "email" else text
