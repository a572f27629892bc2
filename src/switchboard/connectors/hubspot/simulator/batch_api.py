"""CRM v3 batch endpoints: read, create, update, upsert and archive up to 100 contacts at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchboard.connectors.hubspot.simulator.errors import (
    NOT_FOUND,
    HubSpotError,
    conflict,
    validation_error,
)
from switchboard.connectors.hubspot.simulator.params import as_object, json_body
from switchboard.connectors.hubspot.simulator.store import clean_properties, iso, now_ms
from switchboard.sandbox.faults import LOG_ENTRY

if TYPE_CHECKING:
    from switchboard.connectors.hubspot.simulator.app import HubSpotSimulator

BATCH_LIMIT = 100


def read_inputs(body: dict[str, Any], request: Request) -> list[Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise validation_error("Invalid input JSON: inputs must be a list.")
    if len(inputs) > BATCH_LIMIT:
        raise validation_error(
            f"The maximum number of inputs supported in a batch request is {BATCH_LIMIT}. "
            "Please reduce the number of items and try again",
            context={"inputs": [str(len(inputs))]},
        )
    # The request log shows how full each batch request was.
    request.scope.get(LOG_ENTRY, {})["inputs"] = len(inputs)
    return inputs


def input_error(exc: HubSpotError, key: str) -> dict[str, Any]:
    """One input's error in a 207 answer: the other inputs of the batch went through."""
    return {
        "status": "error",
        "category": exc.category,
        "message": exc.message,
        "context": {"ids": [key]},
    }


def batch_answer(
    results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str
) -> Response:
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso(now_ms()),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
    return JSONResponse(body, status_code=207 if errors else 200)


async def batch_read(sim: HubSpotSimulator, request: Request) -> Response:
    started = iso(now_ms())
    body = as_object(await json_body(request))
    id_property = body.get("idProperty")
    archived = bool(body.get("archived", False))
    names = body.get("properties") or None
    results, missing = [], []
    for item in read_inputs(body, request):
        key = str(item.get("id", "")) if isinstance(item, dict) else ""
        contact = sim.store.find(key, id_property, archived=archived)
        if contact is None:
            missing.append(key)
        else:
            results.append(contact.render(names))
    errors = []
    if missing:
        errors.append(
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some CONTACT objects, they may be deleted or not "
                "exist. Check that ids are valid.",
                "context": {"ids": missing},
            }
        )
    return batch_answer(results, errors, started)


async def batch_create(sim: HubSpotSimulator, request: Request) -> Response:
    started = iso(now_ms())
    body = as_object(await json_body(request))
    prepared = [
        clean_properties(
            item.get("properties") if isinstance(item, dict) else None,
            partial=False,
            rejected_domains=sim.rejected_email_domains,
        )
        for item in read_inputs(body, request)
    ]
    # All or nothing, like HubSpot: a duplicate email (existing or inside the batch) fails
    # the whole batch before anything is created.
    with sim.store.lock:
        seen: set[str] = set()
        for props in prepared:
            email = props.get("email")
            if email and email in sim.store.by_email:
                raise conflict(sim.store.by_email[email])
            if email and email in seen:
                raise validation_error(f"Duplicate email {email} in batch inputs.")
            if email:
                seen.add(email)
        created = [sim.store.create(props) for props in prepared]
    results = [c.render(p) for c, p in zip(created, prepared, strict=True)]
    return JSONResponse(
        {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso(now_ms()),
        },
        status_code=201,
    )


async def batch_update(sim: HubSpotSimulator, request: Request) -> Response:
    """Each input on its own: an unknown id, a bad value or a taken email fails that input
    (207 with ``errors[]``), the others are updated."""
    started = iso(now_ms())
    body = as_object(await json_body(request))
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    missing: list[str] = []
    for item in read_inputs(body, request):
        if not isinstance(item, dict):
            raise validation_error("Invalid input JSON: inputs must be objects.")
        key = str(item.get("id", ""))
        try:
            props = clean_properties(
                item.get("properties"),
                partial=True,
                rejected_domains=sim.rejected_email_domains,
            )
            contact = sim.store.find(key, item.get("idProperty"))
            if contact is None:
                missing.append(key)
                continue
            results.append(sim.store.update(contact, props).render(props))
        except HubSpotError as exc:
            errors.append(input_error(exc, key))
    if missing:
        errors.append(
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": NOT_FOUND,
                "context": {"ids": missing},
            }
        )
    return batch_answer(results, errors, started)


async def batch_upsert(sim: HubSpotSimulator, request: Request) -> Response:
    """Creates the contacts whose email is unknown, updates the others (``new`` says
    which); a bad input fails alone (207)."""
    started = iso(now_ms())
    body = as_object(await json_body(request))
    inputs = read_inputs(body, request)
    keys = [
        str(item.get("id", "")).strip().lower() if isinstance(item, dict) else "" for item in inputs
    ]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise validation_error(f"Duplicate IDs found in batch input: {duplicates}.")
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for item, key in zip(inputs, keys, strict=True):
        if not isinstance(item, dict):
            raise validation_error("Invalid input JSON: inputs must be objects.")
        if item.get("idProperty") != "email":
            raise validation_error('Upsert needs idProperty "email" (a unique property).')
        try:
            props = clean_properties(
                {**(item.get("properties") or {}), "email": key},
                partial=False,
                rejected_domains=sim.rejected_email_domains,
            )
            with sim.store.lock:
                contact = sim.store.find(key, "email")
                if contact is None:
                    contact, new = sim.store.create(props), True
                else:
                    contact, new = sim.store.update(contact, props), False
        except HubSpotError as exc:
            errors.append(input_error(exc, key))
            continue
        results.append({**contact.render(props), "new": new})
    return batch_answer(results, errors, started)


async def batch_archive(sim: HubSpotSimulator, request: Request) -> Response:
    body = as_object(await json_body(request))
    for item in read_inputs(body, request):
        key = str(item.get("id", "")) if isinstance(item, dict) else ""
        contact = sim.store.find(key, None)
        if contact is not None:
            sim.store.archive(contact)
    return Response(status_code=204)
