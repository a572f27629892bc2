from __future__ import annotations

from fastapi import APIRouter, Request, Response

from switchboard.deps import CurrentConfig, get_db
from switchboard.errors import NotFound
from switchboard.openapi import ERRORS

# No API key: webhook senders prove themselves with signatures instead.
router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "/{connection}",
    status_code=202,
    responses={
        202: {"description": "Accepted (or an exact redelivery, acknowledged)"},
        **ERRORS(400, 401, 404, 409, 413, 422),
    },
)
async def receive(connection: str, request: Request, config: CurrentConfig) -> Response:
    """Receive a webhook for the named connection (the connection's kind decides the format,
    the signature scheme and the answers)."""
    entry = config.entry(connection)
    if entry is None:
        raise NotFound(f"No connection named {connection!r}")
    conn = entry.settings
    handler = entry.provider.receiver
    if handler is None:
        raise NotFound(f"Connection {connection!r} ({conn.kind}) does not receive webhooks")
    return await handler(request, entry.id, conn, get_db(request), config)
