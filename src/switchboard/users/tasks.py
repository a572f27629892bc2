"""``users.propagate``: bring users' CRM contacts up to the users' latest state, in batches.

Runs at least once per change (coalesced per user), up to :data:`BATCH` users per run: the
worker hands over the due jobs together and the CRM connector writes them in as few requests as
it can (HubSpot: one ``batch/update`` or ``batch/upsert`` per 100 users; a CRM without batch
endpoints: one call per user, a few at once). A contact is resolved by email once and its id
remembered (a later email change updates the same contact); only the fields that differ from
what the CRM was last given are sent, a cleared field as cleared; nothing changed, no call.
Each user has its own outcome: a CRM refusal of one input (400, 404 with ``create_missing``
off) fails that user alone, with the CRM's message; a failure of a whole request (429, 5xx,
network; Retry-After honoured) retries every user of it until the job's deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import structlog
from sqlalchemy import Table, bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard import metrics
from switchboard.changes import kinds as changes
from switchboard.connectors.crm import FIELDS, ContactWrite, CrmContact, crm_client
from switchboard.connectors.fields import custom_fields_of
from switchboard.contacts import service as contacts
from switchboard.db import utcnow
from switchboard.errors import TerminalError
from switchboard.jobs import JobContext
from switchboard.jobs.registry import OutcomeWrite
from switchboard.models import Contact, User
from switchboard.users.service import crm_fields

if TYPE_CHECKING:
    from switchboard.config import Config

log = structlog.get_logger("switchboard.users")

BATCH = 100
"""Users per run: a CRM's batch endpoints take about 100 inputs per request."""


def concurrency(config: Config) -> int:
    """Batches one worker runs at once (``[users] concurrency``)."""
    return config.hub.users.concurrency


async def propagate(jobs: list[JobContext]) -> None:
    ctx0 = jobs[0]
    ids = [str(ctx.payload["user"]) for ctx in jobs]
    async with ctx0.db.read_session() as session:
        users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(ids))))}
    by_connection: dict[str | None, list[tuple[JobContext, User]]] = {}
    for ctx, user_id in zip(jobs, ids, strict=True):
        user = users.get(user_id)
        if user is None or user.synced_version >= user.version:
            continue  # nothing newer than what the CRM already has
        name = user.crm_connection or ctx.config.hub.users.crm_connection
        by_connection.setdefault(name, []).append((ctx, user))
    for name, group in by_connection.items():
        await _propagate(name, group)


async def _propagate(name: str | None, group: list[tuple[JobContext, User]]) -> None:
    ctx0 = group[0][0]
    if name is None or ctx0.config.connection(name) is None or ctx0.outbound is None:
        error = f"no CRM connection {name!r} is configured"
        for ctx, user in group:
            ctx.on_outcome(
                _recorder(user.id, user.version, lambda _: "failed", error=error, connection=name)
            )
        return
    crm = crm_client(ctx0.outbound, ctx0.config, name, mode="job")
    mapped = {*FIELDS, *custom_fields_of(ctx0.config.connection(name))}
    writes = [_write(user, mapped) for _, user in group]
    try:
        results = await crm.write_many(writes, create_missing=ctx0.config.hub.users.create_missing)
    except Exception as exc:  # the whole request failed: every user of it is retried
        for ctx, user in group:
            _failed(ctx, user, exc)
        return
    finally:
        metrics.USERS_CRM_CALLS.labels(name).inc(crm.calls)
    synced: list[dict[str, Any]] = []
    written: list[CrmContact] = []
    for (ctx, user), write, result in zip(group, writes, results, strict=True):
        if isinstance(result, Exception):
            _failed(ctx, user, result)
            continue
        synced.append(
            {
                "b_id": user.id,
                "b_version": user.version,
                "synced_fields": {k: v for k, v in write.fields.items() if v is not None},
                "crm_contact_id": result.external_id,
            }
        )
        if result.raw:
            written.append(result)
    if synced:
        await _record_synced(ctx0, name, synced, written)
        metrics.USERS_PROPAGATED.labels(name).inc(len(synced))


_SYNCED = (
    update(cast(Table, User.__table__))
    .where(User.__table__.c.id == bindparam("b_id"))
    .values(
        sync_state=case(
            (User.__table__.c.version == bindparam("b_version"), "synced"), else_="pending"
        ),
        sync_attempts=User.__table__.c.sync_attempts + 1,
        last_error=None,
        synced_version=bindparam("b_version"),
        synced_fields=bindparam("synced_fields"),
        crm_contact_id=bindparam("crm_contact_id"),
        synced_at=bindparam("synced_at"),
    )
)
"""The users a batch synced, in one ``executemany``. If a user changed meanwhile its state
stays ``pending``: the newer change has its own job queued."""


async def _record_synced(
    ctx: JobContext, name: str, synced: list[dict[str, Any]], written: list[CrmContact]
) -> None:
    """Record the synced users, and the written contacts in the contacts store, in one
    transaction right after the CRM answered: before the CRM's webhooks about these writes
    arrive, so that they are recognised as echoes (``contacts.tasks.own_writes``). It commits
    before the jobs' success: a worker dying in between leaves jobs that find nothing newer to
    send and succeed without a call."""
    now = utcnow()
    ids = [contacts.contact_id(name, c.external_id) for c in written]
    async with ctx.db.session() as session:
        await session.execute(_SYNCED, [row | {"synced_at": now} for row in synced])
        await changes.users_synced(session, name, synced)
        stored = {
            row.external_id: row
            for row in await session.scalars(select(Contact).where(Contact.id.in_(ids)))
        }
        merged = [
            contacts.merge(contacts.as_crm(stored[c.external_id]), c)
            if c.external_id in stored
            else c
            for c in written
            # An update's answer holds the written fields only: not a whole new row.
            if c.external_id in stored or c.fields.get("email")
        ]
        await contacts.store_many(session, name, merged)


def _write(user: User, mapped: set[str]) -> ContactWrite:
    """What the user's contact should hold. A field the CRM was given before and the user no
    longer has is sent as cleared. Only the ``mapped`` fields (standard, and the connection's
    custom ones) are written: a custom field dropped from the configuration since the user was
    saved is left alone rather than failing every write of the batch."""
    fields: dict[str, str | None] = {k: v for k, v in crm_fields(user).items() if k in mapped}
    known: dict[str, Any] | None = None
    if user.crm_contact_id is not None:
        known = {k: v for k, v in (user.synced_fields or {}).items() if k in mapped}
        for name in known:
            fields.setdefault(name, None)
    return ContactWrite(
        email=user.email, fields=fields, contact_id=user.crm_contact_id, known=known
    )


def _failed(ctx: JobContext, user: User, exc: Exception) -> None:
    ctx.fail(exc)
    name = user.crm_connection or ctx.config.hub.users.crm_connection
    if isinstance(exc, TerminalError):
        ctx.on_outcome(
            _recorder(
                user.id, user.version, lambda _: "failed", error=_describe(exc), connection=name
            )
        )
    else:
        # The job's new state says whether it will be retried ("pending") or has run out of
        # time ("dead"); the user's sync state follows it.
        ctx.on_outcome(
            _recorder(
                user.id,
                user.version,
                lambda job: "dead" if job == "dead" else "pending",
                _describe(exc),
                connection=name,
            )
        )


def _recorder(
    user_id: str,
    version: int,
    state: Callable[[str | None], str],
    error: str | None = None,
    *,
    fields: dict[str, str] | None = None,
    contact_id: str | None = None,
    connection: str | None = None,
) -> OutcomeWrite:
    """The run's record on the user, written with the job's outcome (``state`` maps the job's
    new state to the user's sync state). If the user changed meanwhile, its state stays
    ``pending``: the newer change has its own job queued."""

    async def write(session: AsyncSession, job_state: str | None) -> None:
        sync_state = state(job_state)
        values: dict[str, Any] = {
            "sync_state": case((User.version == version, sync_state), else_="pending"),
            "sync_attempts": User.sync_attempts + 1,
            "last_error": error,
        }
        if sync_state == "synced":
            values |= {
                "synced_version": version,
                "synced_fields": fields,
                "crm_contact_id": contact_id,
                "synced_at": utcnow(),
            }
        await session.execute(update(User).where(User.id == user_id).values(**values))
        if sync_state in ("failed", "dead"):
            await changes.user_sync_ended(
                session, sync_state, user_id, version, connection=connection, error=error
            )

    return write


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "provider_status", None)
    message = getattr(exc, "provider_message", None) or str(exc)
    return (f"CRM answered {status}: {message}" if status else f"{type(exc).__name__}: {message}")[
        :2000
    ]
