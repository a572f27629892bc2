from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from switchboard.deps import Authenticated, ConnectionFilter, DbSession
from switchboard.errors import Conflict, NotFound
from switchboard.openapi import ERRORS
from switchboard.parsing import IdCursor
from switchboard.tasks import service
from switchboard.tasks.schemas import TaskOut, TaskPage, TaskState

router = APIRouter(prefix="/tasks", tags=["tasks"], dependencies=Authenticated)


@router.get("", response_model=TaskPage, responses=ERRORS(401, 404, 422))
async def list_tasks(
    session: DbSession,
    user_id: Annotated[str | None, Query(alias="userId")] = None,
    state: TaskState | None = None,
    connection: ConnectionFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: IdCursor = None,
) -> TaskPage:
    """Tasks in a stable order (first seen first); follow `next_cursor` for more."""
    tasks = await service.list_tasks(
        session, user_id=user_id, state=state, connection=connection, limit=limit, after=cursor
    )
    return TaskPage(
        items=[service.to_out(t) for t in tasks],
        next_cursor=str(tasks[-1].pk) if len(tasks) == limit else None,
    )


@router.get("/{task_id}", response_model=TaskOut, responses=ERRORS(401, 404, 409, 422))
async def get_task(
    task_id: str, session: DbSession, connection: ConnectionFilter = None
) -> TaskOut:
    """A task by the TODO app's id (`connection` picks one when several apps share an id)."""
    found = await service.get_tasks(session, task_id, connection)
    if not found:
        raise NotFound("Task not found")
    if len(found) > 1:
        raise Conflict("Several connections have a task with this id: pass ?connection=")
    return service.to_out(found[0])
