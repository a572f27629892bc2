from __future__ import annotations

from fastapi import APIRouter, Request

from switchboard.config import Config, Connection
from switchboard.connections.schemas import ConnectionList, ConnectionOut
from switchboard.deps import Authenticated, CurrentConfig
from switchboard.errors import NotFound
from switchboard.http import Outbound
from switchboard.openapi import ERRORS

router = APIRouter(prefix="/connections", tags=["connections"], dependencies=Authenticated)


async def _out(request: Request, config: Config, name: str, conn: Connection) -> ConnectionOut:
    outbound: Outbound | None = getattr(request.app.state, "outbound", None)
    if outbound is None or name not in outbound.names:
        return ConnectionOut.of(name, conn)
    return ConnectionOut.of(name, conn, await outbound.status(name))


@router.get("", response_model=ConnectionList, responses=ERRORS(401))
async def list_connections(request: Request, config: CurrentConfig) -> ConnectionList:
    return ConnectionList(
        items=[
            await _out(request, config, name, conn)
            for name, conn in sorted(config.hub.connections.items())
        ]
    )


@router.get("/{name}", response_model=ConnectionOut, responses=ERRORS(401, 404))
async def get_connection(name: str, request: Request, config: CurrentConfig) -> ConnectionOut:
    conn = config.connection(name)
    if conn is None:
        raise NotFound(f"No connection named {name!r}")
    return await _out(request, config, name, conn)
