from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class ConnectSession(Base):
    """A single-use link that lets an end user connect their account (``POST /connect/sessions``).

    Only a SHA-256 of the token is stored. ``connection`` is set for a re-authorisation link of
    an existing connection. ``used_at``: the link was opened (it cannot be opened again).
    """

    __tablename__ = "connect_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    integration: Mapped[str] = mapped_column(String(100))
    connection: Mapped[str | None] = mapped_column(String(100))
    end_user_id: Mapped[str | None] = mapped_column(String(200))
    end_user_email: Mapped[str | None] = mapped_column(String(320))
    end_user_organisation: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(JSON)
    return_url: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_connect_sessions_expires_at", "expires_at"),)
