"""``POST /connections/{name}/sync`` and ``GET /connections/{name}/runs``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from switchboard.deps import Authenticated, ConnectionName, CurrentConfig, DbSession
from switchboard.openapi import ERRORS
from switchboard.parsing import MAX_ROW_ID
from switchboard.syncs import service
from switchboard.syncs.schemas import SyncQueued, SyncRunList, SyncRunOut

router = APIRouter(prefix="/connections", tags=["connections"], dependencies=Authenticated)


@router.post(
    "/{name}/sync",
    status_code=202,
    response_model=SyncQueued,
    responses=ERRORS(400, 401, 404, 409),
)
async def sync_connection(
    name: ConnectionName,
    config: CurrentConfig,
    session: DbSession,
    full: Annotated[bool, Query(description="Ignore what was stored last time.")] = False,
) -> JSONResponse:
    """Queue a sync of the connection now. A sync already queued is reused (its job id is
    returned), and runs of one connection never overlap."""
    service.resolve(config, name, to_run=True)
    conn = config.connection(name)
    assert conn is not None
    job_id = await service.enqueue_sync(session, name, full=full)
    body = SyncQueued(connection=name, kind=conn.kind, job_id=job_id, full=full)
    return JSONResponse(body.model_dump(), status_code=202)


@router.get("/{name}/runs", response_model=SyncRunList, responses=ERRORS(400, 401, 404, 422))
async def list_runs(
    name: ConnectionName,
    config: CurrentConfig,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="Runs older than this id.")
    ] = None,
) -> SyncRunList:
    """The connection's sync runs, newest first."""
    service.resolve(config, name)
    runs = await service.list_runs(session, name, limit=limit + 1, before=before)
    page = runs[:limit]
    return SyncRunList(
        items=[SyncRunOut.model_validate(service.run_dict(run)) for run in page],
        next_before=page[-1].id if len(runs) > limit else None,
    )
