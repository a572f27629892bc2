"""Tasks from TODO-app webhooks: the state machine of shared/providers/TODO_WEBHOOKS.md.

Times are the events' own timestamps (UTC), never arrival times, so reports evaluate every state
as of a window's end and stay reproducible when events arrive late or out of order. Arrival
order still decides the answers of the provider's table (a `deleted` that arrives first makes a
later `updated` a 400), and the first completion and first deletion are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.db import utcnow
from switchboard.models import Task
from switchboard.tasks.schemas import TaskOut, TodoEvent

DUPLICATE = {"detail": "Duplicate task creation"}
NOT_FOUND = {"detail": "Task not found"}
INVALID = {"detail": "Invalid event status"}


@dataclass(frozen=True)
class Outcome:
    status: int
    outcome: str
    body: dict[str, Any] | None = None

    @property
    def applied(self) -> bool:
        return 200 <= self.status < 300


def apply_event(
    task: Task | None, connection: str, event: TodoEvent
) -> tuple[Outcome, Task | None]:
    """Apply one event to the task it names (``None``: unknown so far). Returns the outcome and,
    for a creation, the new task for the caller to add to its session. The caller holds the
    task's lock (``db.lock_keys``) and owns the transaction."""
    if event.event not in ("created", "updated", "deleted"):
        return Outcome(400, "invalid_event", INVALID), None
    md = event.metadata
    at = event.timestamp
    if event.event == "created":
        if task is not None:
            return Outcome(409, "duplicate_creation", DUPLICATE), None
        created = Task(
            connection=connection,
            task_id=md.id,
            user_id=md.userId,
            content=md.content,
            content_at=at,
            created_at=at,
            # A task created already completed is completed at its creation (README).
            completed_at=at if md.isCompleted else None,
            deleted_at=None,
            updated_at=utcnow(),
        )
        return Outcome(202, "created"), created
    if task is None:
        return Outcome(404, "task_not_found", NOT_FOUND), None
    if event.event == "deleted":
        if task.deleted_at is not None:
            return Outcome(202, "unchanged"), None
        task.deleted_at = at
        task.updated_at = utcnow()
        return Outcome(202, "deleted"), None
    # updated
    if task.completed_at is not None:
        return Outcome(202, "unchanged"), None  # the first completion time is kept
    if task.deleted_at is not None:
        return Outcome(400, "update_on_deleted", INVALID), None
    changed = False
    if at >= task.content_at and md.content != task.content:
        task.content, task.content_at, changed = md.content, at, True
    if md.isCompleted:
        task.completed_at, changed = at, True
    if not changed:
        return Outcome(202, "unchanged"), None
    task.updated_at = utcnow()
    return Outcome(202, "completed" if md.isCompleted else "updated"), None


async def load_tasks(
    session: AsyncSession, refs: set[tuple[str, str]]
) -> dict[tuple[str, str], Task]:
    """The tasks named by ``(connection, task id)`` pairs, in one query."""
    if not refs:
        return {}
    found = await session.scalars(
        select(Task).where(
            Task.task_id.in_({task_id for _, task_id in refs}),
            Task.connection.in_({conn for conn, _ in refs}),
        )
    )
    return {(t.connection, t.task_id): t for t in found.all() if (t.connection, t.task_id) in refs}


def to_out(task: Task) -> TaskOut:
    return TaskOut(
        id=task.task_id,
        connection=task.connection,
        userId=task.user_id,
        content=task.content,
        state=task.state,
        createdAt=task.created_at,
        completedAt=task.completed_at,
        deletedAt=task.deleted_at,
        updatedAt=task.updated_at,
    )


async def list_tasks(
    session: AsyncSession,
    *,
    user_id: str | None,
    state: str | None,
    connection: str | None,
    limit: int,
    after: int | None,
) -> list[Task]:
    stmt = select(Task).order_by(Task.pk).limit(limit)
    if user_id is not None:
        stmt = stmt.where(Task.user_id == user_id)
    if connection is not None:
        stmt = stmt.where(Task.connection == connection)
    if state == "deleted":
        stmt = stmt.where(Task.deleted_at.is_not(None))
    elif state == "completed":
        stmt = stmt.where(Task.deleted_at.is_(None), Task.completed_at.is_not(None))
    elif state == "open":
        stmt = stmt.where(Task.deleted_at.is_(None), Task.completed_at.is_(None))
    if after is not None:
        stmt = stmt.where(Task.pk > after)
    return list((await session.scalars(stmt)).all())


async def get_tasks(session: AsyncSession, task_id: str, connection: str | None) -> list[Task]:
    stmt = select(Task).where(Task.task_id == task_id)
    if connection is not None:
        stmt = stmt.where(Task.connection == connection)
    return list((await session.scalars(stmt.limit(2))).all())


async def count_by_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(
            func.count().filter(Task.deleted_at.is_not(None)),
            func.count().filter(Task.deleted_at.is_(None), Task.completed_at.is_not(None)),
            func.count().filter(Task.deleted_at.is_(None), Task.completed_at.is_(None)),
        )
    )
    deleted, completed, open_ = rows.one()
    return {"deleted": deleted, "completed": completed, "open": open_}
