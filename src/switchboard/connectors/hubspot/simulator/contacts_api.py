"""CRM v3 contact endpoints: list, read, create, update, archive, merge and search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchboard.connectors.hubspot.simulator.errors import validation_error
from switchboard.connectors.hubspot.simulator.params import (
    as_object,
    decode_after,
    encode_after,
    flag,
    json_body,
    properties_param,
)
from switchboard.connectors.hubspot.simulator.search import (
    SEARCH_MAX_RESULTS,
    compile_search,
    sort_key,
)
from switchboard.connectors.hubspot.simulator.store import clean_properties, now_ms

if TYPE_CHECKING:
    from switchboard.connectors.hubspot.simulator.app import HubSpotSimulator


async def list_contacts(sim: HubSpotSimulator, request: Request) -> Response:
    q = request.query_params
    try:
        limit = int(q.get("limit", "10"))
    except ValueError:
        raise validation_error(f"Invalid limit: {q.get('limit')}") from None
    limit = max(1, min(limit, 100))  # HubSpot caps silently at 100
    after = decode_after(q["after"]) if q.get("after") else 0
    archived = flag(request, "archived")
    names = properties_param(request)
    with sim.store.lock:
        page = sorted(
            (c for c in sim.store.contacts.values() if c.archived == archived and c.id > after),
            key=lambda c: c.id,
        )[: limit + 1]
        results = [c.render(names) for c in page[:limit]]
    body: dict[str, Any] = {"results": results}
    if len(page) > limit:
        token = encode_after(page[limit - 1].id)
        link = str(request.url.replace(query=f"after={token}"))
        body["paging"] = {"next": {"after": token, "link": link}}
    return JSONResponse(body)


async def get_contact(sim: HubSpotSimulator, request: Request) -> Response:
    contact = sim.must(
        request.path_params["contact_id"],
        request.query_params.get("idProperty"),
        archived=flag(request, "archived"),
    )
    return JSONResponse(contact.render(properties_param(request)))


async def create_contact(sim: HubSpotSimulator, request: Request) -> Response:
    body = as_object(await json_body(request))
    props = clean_properties(
        body.get("properties"), partial=False, rejected_domains=sim.rejected_email_domains
    )
    contact = sim.store.create(props)
    return JSONResponse(contact.render(props), status_code=201)


async def update_contact(sim: HubSpotSimulator, request: Request) -> Response:
    contact = sim.must(request.path_params["contact_id"], request.query_params.get("idProperty"))
    body = as_object(await json_body(request))
    props = clean_properties(
        body.get("properties"), partial=True, rejected_domains=sim.rejected_email_domains
    )
    return JSONResponse(sim.store.update(contact, props).render(props))


async def archive_contact(sim: HubSpotSimulator, request: Request) -> Response:
    contact = sim.store.find(request.path_params["contact_id"], None)
    if contact is not None:
        sim.store.archive(contact)
    return Response(status_code=204)


async def merge_contacts(sim: HubSpotSimulator, request: Request) -> Response:
    body = as_object(await json_body(request))
    primary = sim.must(str(body.get("primaryObjectId", "")), None)
    merged = sim.must(str(body.get("objectIdToMerge", "")), None)
    return JSONResponse(sim.store.merge(primary, merged).render())


async def search(sim: HubSpotSimulator, request: Request) -> Response:
    body = as_object(await json_body(request))
    matches, sort_by, descending = compile_search(body)
    try:
        limit = int(body.get("limit", 10))
        offset = int(body.get("after") or 0)
    except (TypeError, ValueError):
        raise validation_error("limit and after must be integers.") from None
    if not 0 < limit <= 200:
        raise validation_error(f"limit must be between 1 and 200, got {limit}.")
    if offset < 0 or offset + limit > SEARCH_MAX_RESULTS:
        raise validation_error(
            "Search results are limited to 10000 results: "
            f"after ({offset}) + limit ({limit}) is past the end of the allowed window."
        )
    names = body.get("properties") or None
    visible_before = now_ms() - sim.search_lag_ms
    with sim.store.lock:
        found = [
            c
            for c in sim.store.contacts.values()
            if not c.archived and matches(c) and c.updated_ms <= visible_before
        ]
        found.sort(key=sort_key(sort_by), reverse=descending)
        page = [c.render(names) for c in found[offset : offset + limit]]
    out: dict[str, Any] = {"total": len(found), "results": page}
    if offset + limit < len(found):
        out["paging"] = {"next": {"after": str(offset + limit)}}
    return JSONResponse(out)
