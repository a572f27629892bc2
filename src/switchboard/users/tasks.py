"""``users.propagate``: bring the user's CRM contact up to the user's latest state.

Runs at least once per change (coalesced per user). It resolves the contact by email once and
remembers its id (so a later email change updates the same contact), sends only the fields that
differ from what the CRM was last given, and makes no call at all when nothing changed.
Retries (429, 5xx, network; the outbound layer honours Retry-After) last until the job's
deadline; a CRM refusal (400/403, or 404 with ``create_missing`` off) fails at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, select, update

from switchboard.connectors.crm import ContactNotFound, CrmContacts, DuplicateContact, crm_client
from switchboard.db import Database, utcnow
from switchboard.errors import TerminalError
from switchboard.jobs import JobContext, handler
from switchboard.models import Job, User
from switchboard.users.service import JOB_KIND, crm_fields


@handler(JOB_KIND)
async def propagate(ctx: JobContext) -> None:
    user_id = str(ctx.payload["user"])
    async with ctx.db.read_session() as session:
        user = await session.get(User, user_id)
    if user is None or user.synced_version >= user.version:
        return  # nothing newer than what the CRM already has
    version = user.version
    name = user.crm_connection or ctx.config.hub.users.crm_connection
    if name is None or ctx.config.connection(name) is None or ctx.outbound is None:
        await _record(
            ctx.db,
            user_id,
            version,
            state="failed",
            error=f"no CRM connection {name!r} is configured",
        )
        return
    desired = crm_fields(user)
    crm = crm_client(ctx.outbound, ctx.config, name, mode="job")
    try:
        contact_id = await _push(crm, user, desired, ctx.config.hub.users.create_missing)
    except TerminalError as exc:
        await _record(ctx.db, user_id, version, state="failed", error=_describe(exc))
        raise
    except Exception as exc:  # transient (or a bug): retried until the job's deadline
        dead = await _past_deadline(ctx.db, ctx.id)
        await _record(
            ctx.db, user_id, version, state="dead" if dead else "pending", error=_describe(exc)
        )
        raise
    await _record(ctx.db, user_id, version, state="synced", fields=desired, contact_id=contact_id)


async def _push(crm: CrmContacts, user: User, desired: dict[str, str], create_missing: bool) -> str:
    """Make the CRM contact hold ``desired``; returns its id."""
    known: dict[str, Any] = dict(user.synced_fields or {})
    contact_id = user.crm_contact_id
    if contact_id is None:
        found = await crm.find_by_email(user.email)
        if found is not None:
            contact_id, known = found.external_id, found.fields
        elif create_missing:
            try:
                return (await crm.create(dict(desired))).external_id
            except DuplicateContact as exc:  # created by someone else since the lookup
                if exc.existing_id is None:
                    raise
                contact_id, known = exc.existing_id, {}
        else:
            raise ContactNotFound(
                f"no CRM contact has the email {user.email} and create_missing is off"
            )
    changes: dict[str, str | None] = {k: v for k, v in desired.items() if known.get(k) != v}
    if not changes:
        return contact_id
    try:
        await crm.update(contact_id, changes)
    except ContactNotFound:
        if not create_missing:
            raise
        # The remembered contact was deleted in the CRM: create it again.
        return (await crm.create(dict(desired))).external_id
    return contact_id


async def _record(
    db: Database,
    user_id: str,
    version: int,
    *,
    state: str,
    error: str | None = None,
    fields: dict[str, str] | None = None,
    contact_id: str | None = None,
) -> None:
    """Record a run's outcome. If the user changed meanwhile, its state stays ``pending``: the
    newer change has its own job queued."""
    values: dict[str, Any] = {
        "sync_state": case((User.version == version, state), else_="pending"),
        "sync_attempts": User.sync_attempts + 1,
        "last_error": error,
    }
    if state == "synced":
        values |= {
            "synced_version": version,
            "synced_fields": fields,
            "crm_contact_id": contact_id,
            "synced_at": utcnow(),
        }
    async with db.session() as session:
        await session.execute(update(User).where(User.id == user_id).values(**values))


async def _past_deadline(db: Database, job_id: int) -> bool:
    async with db.read_session() as session:
        deadline = await session.scalar(select(Job.deadline).where(Job.id == job_id))
    return deadline is not None and utcnow() >= deadline


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "provider_status", None)
    message = getattr(exc, "provider_message", None) or str(exc)
    return (f"CRM answered {status}: {message}" if status else f"{type(exc).__name__}: {message}")[
        :2000
    ]
