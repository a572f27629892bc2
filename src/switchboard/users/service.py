"""Users and their propagation to the CRM of ``[users] crm_connection``.

A change is saved at once and, in the same transaction, a coalesced job keyed by the user is
enqueued (``users.propagate``). The job reads the user's latest state when it runs, so any number
of changes while the CRM is down become one call with the newest values, and an older state can
never overwrite a newer one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.db import lock_keys, utcnow
from switchboard.jobs.queue import NewJob, enqueue_many
from switchboard.models import User
from switchboard.users.schemas import SyncOut, UserOut

JOB_KIND = "users.propagate"


def job_key(user_id: str) -> str:
    return f"user:{user_id}"


def crm_fields(user: User) -> dict[str, str]:
    """What the CRM contact should hold: only the fields the user has (custom ones included,
    under their own names)."""
    fields = {"email": user.email}
    if user.first_name is not None:
        fields["firstName"] = user.first_name
    if user.last_name is not None:
        fields["lastName"] = user.last_name
    fields.update({k: v for k, v in (user.fields or {}).items() if v is not None})
    return fields


def with_fields(current: dict[str, str] | None, given: dict[str, str | None]) -> dict[str, str]:
    """The user's custom fields after a change: ``given`` over ``current``, ``None`` removing."""
    merged = {**(current or {}), **given}
    return {k: v for k, v in merged.items() if v is not None}


@dataclass(frozen=True)
class Change:
    user_id: str
    values: dict[str, Any]  # email always; firstName/lastName/fields when the caller sent them


@dataclass
class UserState:
    """A user as a PATCH leaves it (what the response shows), without an ORM object."""

    id: str
    email: str
    first_name: str | None
    last_name: str | None
    fields: dict[str, str] | None
    created_at: datetime
    updated_at: datetime
    version: int
    sync_state: str
    sync_attempts: int
    last_error: str | None
    synced_at: datetime | None
    crm_contact_id: str | None
    crm_connection: str | None = None


_WRITTEN = (  # what a change writes to an existing user
    "email",
    "first_name",
    "last_name",
    "fields",
    "updated_at",
    "version",
    "sync_state",
    "sync_attempts",
    "last_error",
    "crm_connection",
    "crm_contact_id",
)
# Built once: a new statement per batch cost more than the writes (see jobs.queue._upsert).
_TABLE = cast(Table, User.__table__)  # Core, not ORM: a list of rows is one executemany
_INSERT = insert(_TABLE)
_STATE = [_TABLE.c[f.name] for f in fields(UserState)]
_UPDATE = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("b_id"))
    .values({name: bindparam(name) for name in _WRITTEN})
)


async def apply_changes(
    session: AsyncSession,
    changes: list[Change],
    *,
    crm_connection: str | None,
    retry_for: timedelta,
) -> list[UserState]:
    """Upsert users (in order) and enqueue their propagation; the caller owns the transaction.

    A new user propagates to ``crm_connection`` (the configured one) unless its change names
    another (``crmConnection``, an id); a user moved to another CRM starts over there (its
    contact id there is looked up again).

    Plain statements rather than the ORM: one select of the users, one ``executemany`` insert
    of the new ones and one of the changed ones (the ORM's unit of work was most of a batch)."""
    ids = {c.user_id for c in changes}
    # Another process may be changing the same users: without the lock both would read version
    # n and write n + 1, and the propagation of the second change would be skipped as done.
    await lock_keys(session, (job_key(user_id) for user_id in ids))
    rows = await session.execute(select(*_STATE).where(User.id.in_(ids)))
    users = {row.id: UserState(*row) for row in rows}
    new: set[str] = set()
    changed: set[str] = set()
    now = utcnow()
    result = []
    jobs: list[NewJob] = []
    for change in changes:
        user = users.get(change.user_id)
        if user is None:
            user = users[change.user_id] = UserState(
                id=change.user_id,
                email=change.values["email"],
                first_name=None,
                last_name=None,
                fields=None,
                created_at=now,
                updated_at=now,
                version=0,
                sync_state="pending",
                sync_attempts=0,
                last_error=None,
                synced_at=None,
                crm_contact_id=None,
                crm_connection=crm_connection,
            )
            new.add(user.id)
        before = (
            user.email,
            user.first_name,
            user.last_name,
            user.fields or {},
            user.crm_connection,
        )
        if "crmConnection" in change.values:
            target = change.values["crmConnection"] or crm_connection
            if target != user.crm_connection:
                user.crm_connection, user.crm_contact_id = target, None
        user.email = change.values["email"]
        user.first_name = change.values.get("firstName", user.first_name)
        user.last_name = change.values.get("lastName", user.last_name)
        if change.values.get("fields") is not None:  # a new dict: earlier results keep theirs
            user.fields = with_fields(user.fields, change.values["fields"]) or None
        after = (
            user.email,
            user.first_name,
            user.last_name,
            user.fields or {},
            user.crm_connection,
        )
        if after != before or user.version == 0:
            user.version += 1
            user.updated_at = now
            changed.add(user.id)
            if (user.crm_connection or crm_connection) is not None:
                user.sync_state = "pending"
                user.sync_attempts = 0
                user.last_error = None
                jobs.append(
                    NewJob(
                        JOB_KIND,
                        {"user": user.id},
                        key=job_key(user.id),
                        coalesce=True,
                        deadline=now + retry_for,
                    )
                )
        result.append(replace(user))  # each caller sees the user as its own change left it
    if new:
        await session.execute(
            _INSERT,
            [asdict(users[i]) | {"synced_version": 0} for i in new],
        )
    if changed - new:
        await session.execute(
            _UPDATE,
            [
                {"b_id": i} | {name: getattr(users[i], name) for name in _WRITTEN}
                for i in changed - new
            ],
        )
    await enqueue_many(session, jobs)
    return result


def to_out(user: User | UserState) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        firstName=user.first_name,
        lastName=user.last_name,
        fields=dict(user.fields or {}),
        createdAt=user.created_at,
        updatedAt=user.updated_at,
        sync=SyncOut(
            state=user.sync_state,
            attempts=user.sync_attempts,
            lastError=user.last_error,
            syncedAt=user.synced_at,
            crmContactId=user.crm_contact_id,
        ),
        crmConnection=user.crm_connection,
    )


async def list_users(
    session: AsyncSession, *, sync_state: str | None, limit: int, after: str | None
) -> list[User]:
    stmt = select(User).order_by(User.id).limit(limit)
    if sync_state is not None:
        stmt = stmt.where(User.sync_state == sync_state)
    if after is not None:
        stmt = stmt.where(User.id > after)
    return list((await session.scalars(stmt)).all())
