from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class ContactCursor(Base):
    """Where a contacts sync stands, per (connection, stream): advanced in the same transaction
    as the page of contacts it covers, so a run killed at any point resumes with no gap and no
    duplicate. ``value`` is the stream's own state (see each CRM provider's ``sync.py``)."""

    __tablename__ = "contact_cursors"

    connection: Mapped[str] = mapped_column(String(100))
    stream: Mapped[str] = mapped_column(String(100))
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (PrimaryKeyConstraint("connection", "stream", name="pk_contact_cursors"),)
