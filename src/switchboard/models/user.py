from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class User(Base):
    """A product user and the state of its propagation to the CRM.

    ``version`` counts accepted changes; ``synced_version`` is the version the CRM contact was
    last brought to, with ``synced_fields`` the values it was given — what lets the propagation
    job skip calls when nothing changed and never push an older state over a newer one.
    ``fields`` holds the user's custom field values by name (those of the CRM connection's
    ``custom_fields``; a cleared one is removed), propagated as the standard fields are.
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    fields: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)
    sync_state: Mapped[str] = mapped_column(String(16))
    sync_attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_version: Mapped[int] = mapped_column(Integer)
    synced_fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    crm_connection: Mapped[str | None] = mapped_column(String(100))
    crm_contact_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_users_sync_state", "sync_state", "id"),
        Index("ix_users_crm_contact", "crm_connection", "crm_contact_id"),
    )
