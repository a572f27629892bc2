"""``users.propagate``: bring the user's CRM contact up to the user's latest state.

Runs at least once per change (coalesced per user). It resolves the contact by email once and
remembers its id (so a later email change updates the same contact), sends only the fields that
differ from what the CRM was last given (a field it was given and the user has cleared since is
sent cleared), and makes no call at all when nothing changed.
Retries (429, 5xx, network; the outbound layer honours Retry-After) last until the job's
deadline; a CRM refusal (400/403, or 404 with ``create_missing`` off) fails at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.connectors.crm import ContactNotFound, CrmContacts, DuplicateContact, crm_client
from switchboard.db import utcnow
from switchboard.errors import TerminalError
from switchboard.jobs import JobContext, handler
from switchboard.jobs.registry import OutcomeWrite
from switchboard.models import User
from switchboard.users.service import JOB_KIND, crm_fields


@handler(JOB_KIND, concurrency=lambda config: config.hub.users.concurrency)
async def propagate(ctx: JobContext) -> None:
    user_id = str(ctx.payload["user"])
    async with ctx.db.read_session() as session:
        user = await session.get(User, user_id)
    if user is None or user.synced_version >= user.version:
        return  # nothing newer than what the CRM already has
    version = user.version
    name = user.crm_connection or ctx.config.hub.users.crm_connection
    if name is None or ctx.config.connection(name) is None or ctx.outbound is None:
        error = f"no CRM connection {name!r} is configured"
        ctx.on_outcome(_recorder(user_id, version, lambda _: "failed", error=error))
        return
    desired = crm_fields(user)
    crm = crm_client(ctx.outbound, ctx.config, name, mode="job")
    try:
        contact_id = await _push(crm, user, desired, ctx.config.hub.users.create_missing)
    except TerminalError as exc:
        ctx.on_outcome(_recorder(user_id, version, lambda _: "failed", error=_describe(exc)))
        raise
    except Exception as exc:  # transient (or a bug): retried until the job's deadline
        # The job's new state says whether it will be retried ("pending") or has run out of
        # time ("dead"); the user's sync state follows it.
        ctx.on_outcome(
            _recorder(
                user_id, version, lambda job: "dead" if job == "dead" else "pending", _describe(exc)
            )
        )
        raise
    ctx.on_outcome(
        _recorder(user_id, version, lambda _: "synced", fields=desired, contact_id=contact_id)
    )


async def _push(crm: CrmContacts, user: User, desired: dict[str, str], create_missing: bool) -> str:
    """Make the CRM contact hold ``desired``; returns its id."""
    known: dict[str, Any] = dict(user.synced_fields or {})
    # A field the CRM was given and the user has cleared since is cleared there too (``None``:
    # each connector sends its CRM's "empty"). Fields the hub never sent are left alone.
    cleared = {k: None for k, v in known.items() if v is not None and k not in desired}
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
    changes |= cleared
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


def _recorder(
    user_id: str,
    version: int,
    state: Callable[[str | None], str],
    error: str | None = None,
    *,
    fields: dict[str, str] | None = None,
    contact_id: str | None = None,
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

    return write


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "provider_status", None)
    message = getattr(exc, "provider_message", None) or str(exc)
    return (f"CRM answered {status}: {message}" if status else f"{type(exc).__name__}: {message}")[
        :2000
    ]
