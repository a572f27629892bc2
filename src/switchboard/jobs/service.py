"""Listing and replaying jobs, shared by the admin API and the CLI."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.errors import Conflict, NotFound
from switchboard.jobs import queue
from switchboard.models import Job
from switchboard.parsing import row_id_exists


async def list_jobs(
    session: AsyncSession,
    *,
    state: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Job]:
    """Newest first; ``before_id`` continues a page."""
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(Job.state == state)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if before_id is not None:
        stmt = stmt.where(Job.id < before_id)
    return list((await session.scalars(stmt)).all())


async def get_job(session: AsyncSession, job_id: int) -> Job:
    job = await session.get(Job, job_id) if row_id_exists(job_id) else None
    if job is None:
        raise NotFound(f"No job {job_id}")
    return job


async def retry_job(session: AsyncSession, job_id: int) -> Job:
    if not row_id_exists(job_id):
        raise NotFound(f"No job {job_id}")
    try:
        job = await queue.replay(session, job_id)
    except ValueError as exc:
        raise Conflict(str(exc)) from None
    if job is None:
        raise NotFound(f"No job {job_id}")
    return job


async def retry_all_dead(session: AsyncSession) -> list[int]:
    ids = await queue.dead_ids(session)
    for job_id in ids:
        await queue.replay(session, job_id)
    return ids
