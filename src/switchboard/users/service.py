"""Users and their propagation to the CRM of ``[users] crm_connection``.

A change is saved at once and, in the same transaction, a coalesced job keyed by the user is
enqueued (``users.propagate``). The job reads the user's latest state when it runs, so any number
of changes while the CRM is down become one call with the newest values, and an older state can
never overwrite a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.db import lock_keys, utcnow
from switchboard.jobs.queue import NewJob, enqueue_many
from switchboard.models import User
from switchboard.users.schemas import SyncOut, UserOut

JOB_KIND = "users.propagate"


def job_key(user_id: str) -> str:
    return f"user:{user_id}"


def crm_fields(user: User) -> dict[str, str]:
    """What the CRM contact should hold: only the fields the user has."""
    fields = {"email": user.email}
    if user.first_name is not None:
        fields["firstName"] = user.first_name
    if user.last_name is not None:
        fields["lastName"] = user.last_name
    return fields


@dataclass(frozen=True)
class Change:
    user_id: str
    values: dict[str, Any]  # email always; firstName/lastName when the caller sent them


async def apply_changes(
    session: AsyncSession,
    changes: list[Change],
    *,
    crm_connection: str | None,
    retry_for: timedelta,
) -> list[User]:
    """Upsert users (in order) and enqueue their propagation; the caller owns the transaction."""
    ids = {c.user_id for c in changes}
    # Another process may be changing the same users: without the lock both would read version
    # n and write n + 1, and the propagation of the second change would be skipped as done.
    await lock_keys(session, (job_key(user_id) for user_id in ids))
    users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(ids)))).all()}
    now = utcnow()
    result = []
    jobs: list[NewJob] = []
    for change in changes:
        user = users.get(change.user_id)
        if user is None:
            user = User(
                id=change.user_id,
                email=change.values["email"],
                first_name=None,
                last_name=None,
                created_at=now,
                updated_at=now,
                version=0,
                sync_state="pending",
                sync_attempts=0,
                synced_version=0,
                crm_connection=crm_connection,
            )
            session.add(user)
            users[user.id] = user
        before = (user.email, user.first_name, user.last_name)
        user.email = change.values["email"]
        if "firstName" in change.values:
            user.first_name = change.values["firstName"]
        if "lastName" in change.values:
            user.last_name = change.values["lastName"]
        if (user.email, user.first_name, user.last_name) != before or user.version == 0:
            user.version += 1
            user.updated_at = now
            if crm_connection is not None:
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
        result.append(user)
    await session.flush()
    await enqueue_many(session, jobs)
    return result


def to_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        firstName=user.first_name,
        lastName=user.last_name,
        createdAt=user.created_at,
        updatedAt=user.updated_at,
        sync=SyncOut(
            state=user.sync_state,
            attempts=user.sync_attempts,
            lastError=user.last_error,
            syncedAt=user.synced_at,
            crmContactId=user.crm_contact_id,
        ),
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
