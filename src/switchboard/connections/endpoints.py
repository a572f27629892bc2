from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.config import Config, Connection
from switchboard.connections.schemas import ConnectionList, ConnectionOut
from switchboard.deps import Authenticated, ConnectionName, CurrentConfig, DbSession
from switchboard.http import Outbound
from switchboard.openapi import ERRORS
from switchboard.syncs.service import connection_summary

router = APIRouter(prefix="/connections", tags=["connections"], dependencies=Authenticated)


async def _out(
    request: Request, session: AsyncSession, config: Config, name: str, conn: Connection
) -> ConnectionOut:
    outbound: Outbound | None = getattr(request.app.state, "outbound", None)
    status = await outbound.status(name) if outbound and name in outbound.names else None
    out = ConnectionOut.of(name, conn, status)
    out.sync = await connection_summary(session, config, name) or None
    return out


@router.get("", response_model=ConnectionList, responses=ERRORS(401))
async def list_connections(
    request: Request, session: DbSession, config: CurrentConfig
) -> ConnectionList:
    return ConnectionList(
        items=[
            await _out(request, session, config, name, conn)
            for name, conn in sorted(config.hub.connections.items())
        ]
    )


@router.get("/{name}", response_model=ConnectionOut, responses=ERRORS(401, 404))
async def get_connection(
    name: ConnectionName, request: Request, session: DbSession, config: CurrentConfig
) -> ConnectionOut:
    conn = config.connection(name)
    assert conn is not None  # ConnectionName resolved it
    return await _out(request, session, config, name, conn)
