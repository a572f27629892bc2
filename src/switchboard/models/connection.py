from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class ConnectionRow(Base):
    """One end customer's account on an integration (``switchboard.connections``).

    ``id`` is immutable and the only key every other table uses (contacts, users, runs,
    schedules, credentials, budgets…); ``alias`` is the unique, renameable name people use.
    ``config`` is the Fernet ciphertext of the connection's settings as given (they include
    its credentials); ``settings`` the same with secrets masked, for listing without
    decrypting. ``account`` is the provider's id of the connected account (a HubSpot portal
    id), which routes provider-level webhooks.
    """

    __tablename__ = "connections"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    integration: Mapped[str | None] = mapped_column(String(100))
    account: Mapped[str | None] = mapped_column(String(200))
    end_user_id: Mapped[str | None] = mapped_column(String(200))
    end_user_email: Mapped[str | None] = mapped_column(String(320))
    end_user_organisation: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(JSON)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    config: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    status_reason: Mapped[str | None] = mapped_column(Text)
    file_managed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_connections_end_user_id", "end_user_id"),
        Index("ix_connections_integration_account", "integration", "account"),
    )
