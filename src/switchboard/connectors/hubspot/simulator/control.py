"""Control endpoints under ``/_sandbox/hubspot`` (no auth, no rate limit, no faults): the
changes a user makes in the HubSpot UI, and the simulator's limits, tokens and webhooks."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchboard.connectors.hubspot.simulator.errors import validation_error
from switchboard.connectors.hubspot.simulator.limits import HubSpotLimits
from switchboard.connectors.hubspot.simulator.params import as_object, json_body
from switchboard.connectors.hubspot.simulator.tokens import Token
from switchboard.connectors.hubspot.simulator.webhooks import HubSpotWebhookSettings

if TYPE_CHECKING:
    from switchboard.connectors.hubspot.simulator.app import HubSpotSimulator


async def control_create(sim: HubSpotSimulator, request: Request) -> Response:
    body = as_object(await json_body(request))
    return JSONResponse(sim.ui_create(body.get("properties") or {}), status_code=201)


async def control_update(sim: HubSpotSimulator, request: Request) -> Response:
    body = as_object(await json_body(request))
    return JSONResponse(sim.ui_update(request.path_params["contact_id"], body.get("properties")))


async def control_delete(sim: HubSpotSimulator, request: Request) -> Response:
    sim.ui_delete(request.path_params["contact_id"])
    return Response(status_code=204)


async def control_merge(sim: HubSpotSimulator, request: Request) -> Response:
    body = as_object(await json_body(request))
    return JSONResponse(
        sim.ui_merge(body.get("primaryObjectId", ""), body.get("objectIdToMerge", ""))
    )


async def control_state(sim: HubSpotSimulator, request: Request) -> Response:
    with sim.store.lock:
        archived = sum(1 for c in sim.store.contacts.values() if c.archived)
        total = len(sim.store.contacts)
    return JSONResponse(
        {
            "contacts": total - archived,
            "archived": archived,
            "limits": sim.limits.model_dump(),
            "webhooks": sim.webhooks.outbox.stats(),
        }
    )


async def control_limits(sim: HubSpotSimulator, request: Request) -> Response:
    if request.method in ("PUT", "PATCH"):
        data = as_object(await json_body(request))
        base = {} if request.method == "PUT" else sim.limits.model_dump()
        sim.set_limits(HubSpotLimits.model_validate({**base, **data}))
    return JSONResponse(sim.limits.model_dump())


async def control_tokens(sim: HubSpotSimulator, request: Request) -> Response:
    body = as_object(await json_body(request))
    value = body.get("token")
    if not isinstance(value, str) or not value:
        raise validation_error("token is required")
    ttl = body.get("expires_in")
    if ttl is None:
        token = sim.tokens.add_private_app(value)
    else:
        token = sim.tokens.add(Token(value, "oauth", time.time() + float(ttl)))
    return JSONResponse(
        {"token": token.value, "kind": token.kind, "expires_at": token.expires_at},
        status_code=201,
    )


async def control_expire(sim: HubSpotSimulator, request: Request) -> Response:
    raw = await request.body()
    body = as_object(json.loads(raw)) if raw else {}
    return JSONResponse({"expired": sim.tokens.expire(body.get("token"))})


async def control_oauth(sim: HubSpotSimulator, request: Request) -> Response:
    """The authorization-code grant: ``PATCH`` ``{"auto_approve"?, "redirect_uris"?}`` (an empty
    list: any http(s) URL); both answer the settings, the codes issued and the event log."""
    if request.method == "PATCH":
        data = as_object(await json_body(request))
        auto_approve, uris = data.get("auto_approve"), data.get("redirect_uris")
        if auto_approve is not None and not isinstance(auto_approve, bool):
            raise validation_error("auto_approve must be a boolean")
        if uris is not None and not (
            isinstance(uris, list) and all(isinstance(u, str) for u in uris)
        ):
            raise validation_error("redirect_uris must be a list of URLs")
        sim.oauth.configure(auto_approve=auto_approve, redirect_uris=uris)
    return JSONResponse(sim.oauth.as_json())


async def control_webhooks(sim: HubSpotSimulator, request: Request) -> Response:
    if request.method == "DELETE":
        sim.webhooks.outbox.clear()
    elif request.method in ("PUT", "PATCH"):
        data = as_object(await json_body(request))
        if request.method == "PUT":
            data = {**HubSpotWebhookSettings().model_dump(), **data}
        sim.webhooks.configure(**data)
    return JSONResponse(
        {
            "settings": sim.webhooks.settings.model_dump(),
            "stats": sim.webhooks.outbox.stats(),
            "attempts": [a.as_json() for a in sim.webhooks.outbox.attempts()],
        }
    )
