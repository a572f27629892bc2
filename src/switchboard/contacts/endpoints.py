"""``/contacts``: reads from the hub's store; writes go through to the CRM first.

Custom fields (a connection's ``custom_fields``) are read under ``fields``, filtered with
``?fields.<name>=<value>`` and written as ``"fields": {...}`` next to the standard fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from switchboard.config import Config
from switchboard.connectors.crm import CrmContacts, Fields, crm_client
from switchboard.connectors.fields import custom_fields_of
from switchboard.contacts import service
from switchboard.contacts.schemas import (
    ContactCreate,
    ContactOut,
    ContactPage,
    ContactPatch,
    ContactReplace,
)
from switchboard.db import Database
from switchboard.deps import (
    Authenticated,
    ConnectionFilter,
    CurrentConfig,
    DbSession,
    get_db,
    resolve_entry,
)
from switchboard.errors import NotFound, Unprocessable
from switchboard.http import Outbound
from switchboard.models import Contact
from switchboard.openapi import ERRORS
from switchboard.parsing import UtcDateTime

router = APIRouter(prefix="/contacts", tags=["contacts"], dependencies=Authenticated)

WRITE_ERRORS = ERRORS(401, 404, 409, 422, 502, 503)


@router.get("", response_model=ContactPage, responses=ERRORS(400, 401, 404, 422))
async def list_contacts(
    request: Request,
    session: DbSession,
    config: CurrentConfig,
    connection: ConnectionFilter = None,
    email: str | None = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Name or email contains (any case).")
    ] = None,
    updated_since: Annotated[
        UtcDateTime | None, Query(description="Contacts whose CRM modification is at or after.")
    ] = None,
    include_deleted: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> Response:
    """Contacts from the store (never the CRM), in a stable order, page by page.

    `?fields.<name>=<value>` (repeatable, for different names) keeps the contacts whose custom
    field `<name>` is exactly `<value>`; a name that no connection (or not `connection`)
    configures is a 422 naming it."""
    rows, next_cursor = await service.list_contacts(
        session,
        limit=limit,
        cursor=cursor,
        connection=connection,
        email=email,
        q=q,
        updated_since=updated_since,
        include_deleted=include_deleted,
        fields=_field_filters(request, config, connection),
    )
    names: dict[str, list[str]] = {}
    for c in rows:
        if c.connection not in names:
            names[c.connection] = _custom_names(config, c.connection)
    page = ContactPage(
        items=[ContactOut.of(c, custom=names[c.connection]) for c in rows],
        next_cursor=next_cursor,
    )
    # Serialised once, by pydantic-core: the hot path (response_model still documents it).
    return Response(page.model_dump_json(), media_type="application/json")


@router.get("/{contact_id}", response_model=ContactOut, responses=ERRORS(401, 404, 422))
async def get_contact(
    contact_id: str,
    session: DbSession,
    config: CurrentConfig,
    raw: Annotated[bool, Query(description="Include the CRM's record as received.")] = False,
    include_deleted: Annotated[
        bool, Query(description="Answer a deleted contact too (else 404).")
    ] = False,
) -> ContactOut:
    contact = _found(await service.get(session, contact_id), include_deleted=include_deleted)
    return ContactOut.of(contact, raw=raw, custom=_custom_names(config, contact.connection))


@router.post("", status_code=201, response_model=ContactOut, responses=WRITE_ERRORS)
async def create_contact(body: ContactCreate, request: Request, config: CurrentConfig) -> Response:
    """Create the contact in the CRM (``connection``, or the default one), then store it."""
    name = body.connection or config.hub.contacts.default_connection
    if name is None:
        raise Unprocessable(
            "No connection given and no [contacts] default_connection configured",
            loc=("body", "connection"),
        )
    name = resolve_entry(config, name).id
    crm = _crm(request, name)
    fields: Fields = body.crm_fields(exclude={"connection"})
    fields["email"] = body.email
    saved = await service.create_through(get_db(request), crm, fields)
    out = ContactOut.of(saved, custom=_custom_names(config, name))
    return JSONResponse(out.model_dump(mode="json"), status_code=201)


@router.patch("/{contact_id}", response_model=ContactOut, responses=WRITE_ERRORS)
async def patch_contact(
    contact_id: str, body: ContactPatch, request: Request, config: CurrentConfig
) -> ContactOut:
    """Change the given fields (standard and custom) in the CRM, then in the store."""
    db = get_db(request)
    contact = await _live(db, contact_id)
    fields: Fields = body.crm_fields()
    saved = await service.update_through(db, _crm(request, contact.connection), contact, fields)
    return ContactOut.of(saved, custom=_custom_names(config, contact.connection))


@router.put("/{contact_id}", response_model=ContactOut, responses=WRITE_ERRORS)
async def put_contact(
    contact_id: str, body: ContactReplace, request: Request, config: CurrentConfig
) -> ContactOut:
    """Replace every field in the CRM (omitted optional fields, custom ones included, are
    cleared), then the store."""
    db = get_db(request)
    contact = await _live(db, contact_id)
    custom = _custom_names(config, contact.connection)
    fields: Fields = {
        **body.model_dump(exclude={"fields"}),
        **dict.fromkeys(custom),
        **(body.fields or {}),
    }
    saved = await service.update_through(db, _crm(request, contact.connection), contact, fields)
    return ContactOut.of(saved, custom=custom)


@router.delete("/{contact_id}", status_code=204, responses=WRITE_ERRORS)
async def delete_contact(contact_id: str, request: Request) -> Response:
    """Delete the contact in the CRM, then tombstone it (``deletedAt``). A deleted contact is a
    404, as for every other operation on it."""
    db = get_db(request)
    contact = await _live(db, contact_id)
    await service.delete_through(db, _crm(request, contact.connection), contact)
    return Response(status_code=204)


def _found(contact: Contact | None, *, include_deleted: bool = False) -> Contact:
    if contact is None:
        raise NotFound("Contact not found")
    if contact.deleted_at is not None and not include_deleted:
        raise NotFound("Contact was deleted (listed with include_deleted=true)")
    return contact


async def _live(db: Database, contact_id: str) -> Contact:
    async with db.read_session() as session:
        return _found(await service.get(session, contact_id))


def _custom_names(config: Config, connection: str) -> list[str]:
    return list(custom_fields_of(config.connection(connection)))


def _field_filters(request: Request, config: Config, connection: str | None) -> dict[str, str]:
    """``?fields.<name>=<value>`` as ``{name: value}``; a 422 naming a name that ``connection``
    (or, when none is given, every connection) does not configure. A name given twice keeps the
    last value, as FastAPI does for a single-valued parameter."""
    filters: dict[str, str] = {}
    known: Mapping[str, str] | set[str] | None = None  # looked up for the first such parameter
    for key, value in request.query_params.multi_items():
        if not key.startswith("fields."):
            continue
        name = key.removeprefix("fields.")
        if known is None:
            known = (
                custom_fields_of(config.connection(connection))
                if connection is not None
                else {n for c in config.connections.values() for n in custom_fields_of(c)}
            )
        if name not in known:
            where = f"connection {connection!r}" if connection else "any connection"
            raise Unprocessable(
                f"Unknown custom field {name!r}: not configured on {where}", loc=("query", key)
            )
        filters[name] = value
    return filters


def _crm(request: Request, name: str) -> CrmContacts:
    outbound: Outbound = request.app.state.outbound
    return crm_client(outbound, request.app.state.config, name, mode="request")
