from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from switchboard.deps import Authenticated, DbSession
from switchboard.openapi import ERRORS
from switchboard.parsing import invalid_query, parse_timestamp
from switchboard.reports import service
from switchboard.reports.schemas import TaskReport

router = APIRouter(prefix="/reports", tags=["reports"], dependencies=Authenticated)


def _time(name: str, value: str) -> datetime:
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise invalid_query(name, str(exc)) from None


@router.get("/tasks", response_model=TaskReport, responses=ERRORS(401, 422))
async def task_report(
    session: DbSession,
    user_id: Annotated[str, Query(alias="userId", min_length=1)],
    start: Annotated[str, Query(description="Window start (exclusive), ISO 8601; naive = UTC")],
    end: Annotated[str, Query(description="Window end (inclusive), ISO 8601; naive = UTC")],
) -> Any:
    """The user's report for `(start, end]`, every state as of `end` (see the README for the
    exact boundaries). A user with nothing to report gets empty lists."""
    start_at, end_at = _time("start", start), _time("end", end)
    if start_at >= end_at:
        raise invalid_query("end", "end must be after start")
    reports = await service.compute(session, start_at, end_at, user_id=user_id)
    return reports.get(user_id) or service.empty(user_id, start_at, end_at)
