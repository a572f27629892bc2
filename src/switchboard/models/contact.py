from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class Contact(Base):
    """A CRM contact in the hub's store (``switchboard.contacts``), one row per (connection,
    external id), soft-deleted with ``deleted_at`` so consumers can follow deletions.

    ``id`` is a UUIDv5 of (connection, external id): stable, and computable without a read, so a
    sync upserts pages in one statement and a 409 can name the existing contact's hub id.
    ``updated_at`` is the CRM's last modification (or, for CRMs without timestamps, when the hub
    first saw the current content); a write carrying an older ``updated_at`` never replaces a
    newer one. ``content_hash`` lets an upsert skip rows whose content did not change.
    ``fields`` holds the connection's custom fields by our name (strings, or null when empty;
    ``switchboard.connectors.fields``), as the CRM last gave them.
    """

    __tablename__ = "contacts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    connection: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    company: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    fields: Mapped[dict[str, str | None] | None] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(32))
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("connection", "external_id", name="uq_contacts_connection_external_id"),
        Index("ix_contacts_email", "email"),
        Index("ix_contacts_updated_at", "updated_at"),
    )
