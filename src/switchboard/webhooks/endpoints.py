from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import SecretStr

from switchboard.connections.catalog import BY_KIND
from switchboard.deps import CurrentConfig, get_db
from switchboard.errors import NotFound
from switchboard.openapi import ERRORS
from switchboard.webhooks.receivers import AppConnections

# No API key: webhook senders prove themselves with signatures instead.
router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "/providers/{provider}",
    status_code=200,
    responses={200: {"description": "Accepted and routed"}, **ERRORS(400, 401, 404, 413)},
)
async def receive_for_provider(
    provider: Annotated[str, Path(max_length=40)], request: Request, config: CurrentConfig
) -> Response:
    """One endpoint for an app's webhooks about every connected account (a HubSpot app's
    subscription URL): the signature picks the integration, each event's account (portal)
    picks the connections."""
    handler = BY_KIND[provider].app_receiver if provider in BY_KIND else None
    if handler is None:
        raise NotFound(f"Provider {provider!r} has no provider-level webhook endpoint")
    apps = []
    for integ in config.catalog.integrations.values():
        if integ.provider != provider:
            continue
        secret = integ.secrets.get("webhook_secret") or integ.secrets.get("client_secret")
        by_account: dict[str, list[str]] = {}
        for entry in config.catalog.entries():
            if entry.integration == integ.name and entry.account is not None:
                by_account.setdefault(entry.account, []).append(entry.id)
        apps.append(AppConnections(integ.name, SecretStr(secret) if secret else None, by_account))
    return await handler(request, apps, get_db(request), config)


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
    if entry is None and connection in BY_KIND and BY_KIND[connection].app_receiver is not None:
        # ``/webhooks/hubspot`` with no connection of that name: the provider-level endpoint.
        return await receive_for_provider(connection, request, config)
    if entry is None:
        raise NotFound(f"No connection named {connection!r}")
    conn = entry.settings
    handler = entry.provider.receiver
    if handler is None:
        raise NotFound(f"Connection {connection!r} ({conn.kind}) does not receive webhooks")
    return await handler(request, entry.id, conn, get_db(request), config)
