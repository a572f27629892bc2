"""``/contacts``: reads from the hub's store; writes go through to the CRM first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from switchboard.connectors.crm import CrmContacts, Fields, crm_client
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
    resolve_connection,
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
    session: DbSession,
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
    """Contacts from the store (never the CRM), in a stable order, page by page."""
    rows, next_cursor = await service.list_contacts(
        session,
        limit=limit,
        cursor=cursor,
        connection=connection,
        email=email,
        q=q,
        updated_since=updated_since,
        include_deleted=include_deleted,
    )
    page = ContactPage(items=[ContactOut.of(c) for c in rows], next_cursor=next_cursor)
    # Serialised once, by pydantic-core: the hot path (response_model still documents it).
    return Response(page.model_dump_json(), media_type="application/json")


@router.get("/{contact_id}", response_model=ContactOut, responses=ERRORS(401, 404, 422))
async def get_contact(
    contact_id: str,
    session: DbSession,
    raw: Annotated[bool, Query(description="Include the CRM's record as received.")] = False,
    include_deleted: Annotated[
        bool, Query(description="Answer a deleted contact too (else 404).")
    ] = False,
) -> ContactOut:
    contact = _found(await service.get(session, contact_id), include_deleted=include_deleted)
    return ContactOut.of(contact, raw=raw)


@router.post("", status_code=201, response_model=ContactOut, responses=WRITE_ERRORS)
async def create_contact(body: ContactCreate, request: Request, config: CurrentConfig) -> Response:
    """Create the contact in the CRM (``connection``, or the default one), then store it."""
    name = body.connection or config.hub.contacts.default_connection
    if name is None:
        raise Unprocessable(
            "No connection given and no [contacts] default_connection configured",
            loc=("body", "connection"),
        )
    resolve_connection(config, name)
    crm = _crm(request, name)
    fields: Fields = body.model_dump(exclude={"connection"}, exclude_unset=True)
    fields["email"] = body.email
    saved = await service.create_through(get_db(request), crm, fields)
    return JSONResponse(ContactOut.of(saved).model_dump(mode="json"), status_code=201)


@router.patch("/{contact_id}", response_model=ContactOut, responses=WRITE_ERRORS)
async def patch_contact(contact_id: str, body: ContactPatch, request: Request) -> ContactOut:
    """Change the given fields in the CRM, then in the store."""
    db = get_db(request)
    contact = await _live(db, contact_id)
    fields: Fields = body.model_dump(exclude_unset=True)
    saved = await service.update_through(db, _crm(request, contact.connection), contact, fields)
    return ContactOut.of(saved)


@router.put("/{contact_id}", response_model=ContactOut, responses=WRITE_ERRORS)
async def put_contact(contact_id: str, body: ContactReplace, request: Request) -> ContactOut:
    """Replace every field in the CRM (omitted optional fields are cleared), then the store."""
    db = get_db(request)
    contact = await _live(db, contact_id)
    fields: Fields = body.model_dump()
    saved = await service.update_through(db, _crm(request, contact.connection), contact, fields)
    return ContactOut.of(saved)


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


def _crm(request: Request, name: str) -> CrmContacts:
    outbound: Outbound = request.app.state.outbound
    return crm_client(outbound, request.app.state.config, name, mode="request")
