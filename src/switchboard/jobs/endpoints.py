from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from switchboard.deps import Authenticated, DbSession
from switchboard.jobs import service
from switchboard.jobs.schemas import JobOut, JobPage, JobState
from switchboard.openapi import ERRORS
from switchboard.parsing import IdCursor

router = APIRouter(prefix="/admin/jobs", tags=["jobs"], dependencies=Authenticated)


@router.get("", response_model=JobPage, responses=ERRORS(401, 422))
async def list_jobs(
    session: DbSession,
    state: JobState | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: IdCursor = None,
) -> JobPage:
    """Jobs, newest first. `state=dead` lists the dead-letter queue."""
    jobs = await service.list_jobs(session, state=state, kind=kind, limit=limit, before_id=cursor)
    next_cursor = str(jobs[-1].id) if len(jobs) == limit else None
    return JobPage(items=[JobOut.model_validate(j) for j in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=ERRORS(401, 404))
async def get_job(job_id: int, session: DbSession) -> JobOut:
    return JobOut.model_validate(await service.get_job(session, job_id))


@router.post("/{job_id}/retry", response_model=JobOut, responses=ERRORS(401, 404, 409))
async def retry_job(job_id: int, session: DbSession) -> JobOut:
    """Replay a dead job: it runs again from its first attempt (409 if it is not dead)."""
    return JobOut.model_validate(await service.retry_job(session, job_id))
