"""Operations endpoints (no API key): liveness, readiness, metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from switchboard import metrics
from switchboard.db import head_revision
from switchboard.deps import get_db

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    status: str
    checks: dict[str, Any]
    detail: str | None = None


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="The database answers and its schema is current",
    responses={503: {"model": Readiness, "description": "Not ready; `detail` says why"}},
)
async def ready(request: Request) -> JSONResponse:
    checks: dict[str, Any] = {}
    problems: list[str] = []
    db = get_db(request)
    try:
        current = await db.current_revision()
        checks["database"] = "ok"
        head = head_revision()
        checks["migrations"] = {"current": current, "head": head}
        if current != head:
            problems.append(f"database schema at {current}, expected {head}: run db upgrade")
    except Exception as exc:  # any driver error: report it, the probe is the point
        checks["database"] = "unavailable"
        problems.append(f"database unavailable: {type(exc).__name__}")
    for name, check in getattr(request.app.state, "readiness_checks", {}).items():
        state, problem = await check()
        checks[name] = state
        if problem:
            problems.append(problem)
    body = Readiness(
        status="unavailable" if problems else "ready",
        checks=checks,
        detail="; ".join(problems) or None,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503 if problems else 200)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(request: Request) -> Response:
    for refresh in getattr(request.app.state, "metrics_refreshers", []):
        await refresh()
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
