from __future__ import annotations

from fastapi import APIRouter

from switchboard.connections.schemas import ConnectionList, ConnectionOut
from switchboard.deps import Authenticated, CurrentConfig
from switchboard.errors import NotFound
from switchboard.openapi import ERRORS

router = APIRouter(prefix="/connections", tags=["connections"], dependencies=Authenticated)


@router.get("", response_model=ConnectionList, responses=ERRORS(401))
async def list_connections(config: CurrentConfig) -> ConnectionList:
    return ConnectionList(
        items=[
            ConnectionOut.of(name, conn) for name, conn in sorted(config.hub.connections.items())
        ]
    )


@router.get("/{name}", response_model=ConnectionOut, responses=ERRORS(401, 404))
async def get_connection(name: str, config: CurrentConfig) -> ConnectionOut:
    conn = config.connection(name)
    if conn is None:
        raise NotFound(f"No connection named {name!r}")
    return ConnectionOut.of(name, conn)
