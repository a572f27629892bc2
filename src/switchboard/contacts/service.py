"""The contacts store: upserts that never let older data replace newer, tombstones, listing,
and the per-(connection, stream) sync cursors. Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from switchboard.changes import kinds as changes
from switchboard.connectors.crm import (
    FIELDS,
    ContactNotFound,
    CrmContact,
    CrmContacts,
    DuplicateContact,
    Fields,
)
from switchboard.db import Database, insert, json_text, utcnow
from switchboard.errors import BadRequest, Conflict
from switchboard.models import Contact, ContactCursor

_NAMESPACE = uuid.UUID("6f1c7a52-3c0e-5d2b-9a39-5b0c2f1e8d40")
TOMBSTONE_HASH = "deleted"
"""``content_hash`` of a deleted contact: differs from every live hash, so a restore applies."""


def contact_id(connection: str, external_id: str) -> str:
    """The hub id of a CRM contact: a UUIDv5 of (connection, external id), stable forever."""
    return str(uuid.uuid5(_NAMESPACE, f"{connection}\x00{external_id}"))


def full_name(first: str | None, last: str | None) -> str | None:
    name = " ".join(part.strip() for part in (first, last) if part and part.strip())
    return name or None


def row(
    connection: str, contact: CrmContact, *, now: datetime, deleted: bool | None = None
) -> dict[str, Any]:
    """The store row of ``contact``. CRMs without timestamps (mapped CRMs) get ``now`` as
    ``updated_at`` (the upsert keeps the stored one when the content did not change) and as
    ``created_at``: the upsert never replaces a stored ``created_at``, so it is when the hub
    first saw the contact. Fields that are not standard are the connection's custom fields
    (``fields``)."""
    f = contact.fields
    custom = {k: v for k, v in f.items() if k not in FIELDS}
    is_deleted = contact.archived if deleted is None else deleted
    updated_at = contact.updated_at or now
    values: dict[str, Any] = {
        "id": contact_id(connection, contact.external_id),
        "connection": connection,
        "external_id": contact.external_id,
        "email": (f.get("email") or "").strip().lower() or None,
        "first_name": f.get("firstName"),
        "last_name": f.get("lastName"),
        "name": full_name(f.get("firstName"), f.get("lastName")),
        "phone": f.get("phone"),
        "company": f.get("company"),
        "created_at": contact.created_at or now,
        "updated_at": updated_at,
        "deleted_at": updated_at if is_deleted else None,
        "raw": contact.raw,
        "fields": custom,
        "stored_at": now,
    }
    if is_deleted:
        values["content_hash"] = TOMBSTONE_HASH
    else:
        content = [values[k] for k in ("email", "first_name", "last_name", "phone", "company")]
        # Custom fields only when there are some: the hashes of rows without any stay as they
        # were before custom fields existed (no rewrite of every row at the next sync).
        hashed = [content, contact.raw, custom] if custom else [content, contact.raw]
        digest = hashlib.blake2b(
            json.dumps(hashed, sort_keys=True, default=str).encode(), digest_size=16
        )
        values["content_hash"] = digest.hexdigest()
    return values


async def store(
    session: AsyncSession,
    connection: str,
    contacts: Iterable[CrmContact],
    *,
    deleted: bool | None = None,
) -> int:
    """Upsert contacts (``deleted=True``: as tombstones; default: as the CRM says). Returns how
    many rows were inserted or changed.

    A row is replaced only when its content changed and the incoming ``updated_at`` is not older
    than the stored one: a late webhook or an overlapping sync window never rolls data back.
    """
    now = utcnow()
    by_key: dict[str, dict[str, Any]] = {}
    for contact in contacts:
        values = row(connection, contact, now=now, deleted=deleted)
        previous = by_key.get(values["id"])
        # One statement may not touch a row twice (PostgreSQL): keep the newest version.
        if previous is None or previous["updated_at"] <= values["updated_at"]:
            by_key[values["id"]] = values
    if not by_key:
        return 0
    # Sorted keys: concurrent upserts lock rows in one order and cannot deadlock.
    rows = [by_key[k] for k in sorted(by_key)]
    await changes.contacts_stored(session, rows)
    stmt = _on_conflict(insert(session, Contact).values(rows))
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


def _on_conflict(stmt: Any) -> Any:
    """The upsert of :func:`store`: a row is replaced only when its content changed and the
    incoming ``updated_at`` is not older than the stored one."""
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["connection", "external_id"],
        set_={
            "email": new.email,
            "first_name": new.first_name,
            "last_name": new.last_name,
            "name": new.name,
            "phone": new.phone,
            "company": new.company,
            "created_at": func.coalesce(Contact.created_at, new.created_at),
            "updated_at": new.updated_at,
            "deleted_at": new.deleted_at,
            "raw": new.raw,
            "fields": new.fields,
            "content_hash": new.content_hash,
            "stored_at": new.stored_at,
        },
        where=and_(
            Contact.content_hash != new.content_hash,
            or_(Contact.updated_at.is_(None), Contact.updated_at <= new.updated_at),
        ),
    )


_UPSERTS: dict[str, Any] = {}


async def store_many(
    session: AsyncSession, connection: str, contacts: Iterable[CrmContact]
) -> None:
    """:func:`store` for a hot path that needs no count: one statement built once per dialect
    and executed with a list of rows (a multi-row ``VALUES`` is compiled anew for each call,
    which costs more than the writes)."""
    now = utcnow()
    by_key: dict[str, dict[str, Any]] = {}
    for contact in contacts:
        values = row(connection, contact, now=now)
        previous = by_key.get(values["id"])
        if previous is None or previous["updated_at"] <= values["updated_at"]:
            by_key[values["id"]] = values
    if not by_key:
        return
    dialect = session.get_bind().dialect.name
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        stmt = _UPSERTS[dialect] = _on_conflict(insert(session, Contact))
    rows = [by_key[k] for k in sorted(by_key)]
    await changes.contacts_stored(session, rows)
    await session.execute(stmt, rows)


async def get(session: AsyncSession, hub_id: str) -> Contact | None:
    return await session.get(Contact, hub_id)


async def by_external(session: AsyncSession, connection: str, external_id: str) -> Contact | None:
    return await session.get(Contact, contact_id(connection, external_id))


def as_crm(contact: Contact) -> CrmContact:
    """A stored row back as the CRM's record (for merging a partial write answer into it)."""
    return CrmContact(
        external_id=contact.external_id,
        fields=stored_fields(contact),
        created_at=contact.created_at,
        updated_at=contact.updated_at,
        archived=contact.deleted_at is not None,
        raw=contact.raw or {},
    )


def stored_fields(contact: Contact) -> Fields:
    """The stored row's fields, standard and custom, in the CRM's terms."""
    return {
        "email": contact.email,
        "firstName": contact.first_name,
        "lastName": contact.last_name,
        "phone": contact.phone,
        "company": contact.company,
        **(contact.fields or {}),
    }


def merge(stored: CrmContact, answer: CrmContact) -> CrmContact:
    """A write's answer over what was stored: CRMs answer a partial update with the written
    fields only (HubSpot's PATCH), so the rest comes from the store."""
    raw = dict(answer.raw)
    old_props, new_props = stored.raw.get("properties"), answer.raw.get("properties")
    if isinstance(old_props, dict) and isinstance(new_props, dict):
        raw["properties"] = {**old_props, **new_props}
    return CrmContact(
        external_id=answer.external_id,
        fields={**stored.fields, **answer.fields},
        created_at=answer.created_at or stored.created_at,
        updated_at=answer.updated_at,
        archived=answer.archived,
        raw=raw,
    )


# --- listing ----------------------------------------------------------------------------------


def encode_cursor(hub_id: str) -> str:
    return base64.urlsafe_b64encode(hub_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        uuid.UUID(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("Invalid cursor") from None
    return value


async def list_contacts(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None = None,
    connection: str | None = None,
    email: str | None = None,
    q: str | None = None,
    updated_since: datetime | None = None,
    include_deleted: bool = False,
    fields: Mapping[str, str] | None = None,
) -> tuple[list[Contact], str | None]:
    """A page in id order (stable under concurrent writes: ids never change) and the cursor of
    the next page. ``fields``: custom field values to match exactly."""
    # The raw record is the widest column and a list never shows it: not even loaded.
    query = select(Contact).options(defer(Contact.raw))
    if cursor is not None:
        query = query.where(Contact.id > decode_cursor(cursor))
    if connection is not None:
        query = query.where(Contact.connection == connection)
    if email is not None:
        query = query.where(Contact.email == email.strip().lower())
    if q:
        query = query.where(
            or_(
                Contact.name.icontains(q, autoescape=True),
                Contact.email.icontains(q, autoescape=True),
            )
        )
    if updated_since is not None:
        query = query.where(Contact.updated_at >= updated_since)
    if not include_deleted:
        query = query.where(Contact.deleted_at.is_(None))
    for name, value in (fields or {}).items():
        query = query.where(json_text(Contact.fields, name) == value)
    rows = list((await session.scalars(query.order_by(Contact.id).limit(limit + 1))).all())
    page = rows[:limit]
    return page, encode_cursor(page[-1].id) if len(rows) > limit else None


async def counts(session: AsyncSession, connection: str) -> dict[str, int]:
    live = func.count().filter(Contact.deleted_at.is_(None))
    deleted = func.count().filter(Contact.deleted_at.is_not(None))
    result = (
        await session.execute(
            select(live, deleted).select_from(Contact).where(Contact.connection == connection)
        )
    ).one()
    return {"contacts": int(result[0]), "deleted_contacts": int(result[1])}


async def live_external_ids(session: AsyncSession, connection: str) -> set[str]:
    rows = await session.scalars(
        select(Contact.external_id).where(
            Contact.connection == connection, Contact.deleted_at.is_(None)
        )
    )
    return set(rows.all())


# --- sync cursors -----------------------------------------------------------------------------


async def cursors(session: AsyncSession, connection: str) -> dict[str, dict[str, Any]]:
    rows = await session.scalars(
        select(ContactCursor).where(ContactCursor.connection == connection)
    )
    return {r.stream: dict(r.value) for r in rows.all()}


async def save_cursor(
    session: AsyncSession, connection: str, stream: str, value: dict[str, Any]
) -> None:
    stmt = insert(session, ContactCursor).values(
        connection=connection, stream=stream, value=value, updated_at=utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["connection", "stream"],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )
    await session.execute(stmt)


async def drop_cursors(session: AsyncSession, connection: str, streams: Sequence[str]) -> None:
    await session.execute(
        delete(ContactCursor).where(
            ContactCursor.connection == connection, ContactCursor.stream.in_(list(streams))
        )
    )


# --- write-through ----------------------------------------------------------------------------


async def create_through(db: Database, crm: CrmContacts, fields: Fields) -> Contact:
    """Create in the CRM, then store. No transaction is held during the CRM call (a SQLite
    writer would block every other writer for its duration); the store changes only after the
    CRM accepted. A duplicate becomes a 409 naming the existing contact (read and stored, so
    ``GET /contacts/{existingId}`` finds it)."""
    try:
        created = await crm.create(fields)
    except DuplicateContact as exc:
        raise await _duplicate(db, crm, exc, fields.get("email")) from None
    async with db.session() as session:
        await store(session, crm.connection, [created])
        saved = await by_external(session, crm.connection, created.external_id)
    assert saved is not None
    return saved


async def update_through(
    db: Database, crm: CrmContacts, contact: Contact, fields: Fields
) -> Contact:
    """Write ``fields`` to the CRM, then store the CRM's answer merged over the stored row."""
    try:
        answer = await crm.update(contact.external_id, fields)
    except DuplicateContact as exc:
        raise await _duplicate(db, crm, exc, fields.get("email")) from None
    except ContactNotFound:
        # Deleted in the CRM since we last heard: say so, and remember it.
        async with db.session() as session:
            await store(session, crm.connection, [_tombstone(as_crm(contact))], deleted=True)
        raise
    async with db.session() as session:
        await store(session, crm.connection, [merge(as_crm(contact), answer)])
        saved = await by_external(session, crm.connection, contact.external_id)
    assert saved is not None
    return saved


async def delete_through(db: Database, crm: CrmContacts, contact: Contact) -> None:
    await crm.archive(contact.external_id)
    async with db.session() as session:
        await store(session, crm.connection, [_tombstone(as_crm(contact))], deleted=True)


def _tombstone(contact: CrmContact) -> CrmContact:
    now = utcnow()
    return CrmContact(
        external_id=contact.external_id,
        fields=contact.fields,
        created_at=contact.created_at,
        updated_at=max(now, contact.updated_at) if contact.updated_at else now,
        archived=True,
        raw=contact.raw,
    )


async def _duplicate(
    db: Database, crm: CrmContacts, exc: DuplicateContact, email: str | None
) -> Conflict:
    existing_id = exc.existing_id
    if existing_id is None and email:
        # CRMs that do not name the existing record (mapped CRMs): the store may know it.
        async with db.read_session() as session:
            known = await session.scalar(
                select(Contact.external_id).where(
                    Contact.connection == crm.connection,
                    Contact.email == email.strip().lower(),
                    Contact.deleted_at.is_(None),
                )
            )
        existing_id = known
    extra: dict[str, Any] = {"existingId": None, "existingExternalId": existing_id}
    if existing_id is not None:
        extra["existingId"] = contact_id(crm.connection, existing_id)
        existing = exc.existing or await crm.get(existing_id)
        if existing is not None:
            async with db.session() as session:
                await store(session, crm.connection, [existing])
    return Conflict(f"A contact with this email already exists in {crm.connection}", extra=extra)
