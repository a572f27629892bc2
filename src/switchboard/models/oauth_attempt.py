from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class OAuthAttempt(Base):
    """One trip to a provider's authorize page and back, kept as the record of how it ended.

    ``state_hash`` is the SHA-256 of the ``state`` sent to the provider (single-use: ``used_at``
    is set by the callback that consumes it). ``code_verifier`` is the PKCE verifier, encrypted.
    ``outcome``: None while the browser is away; then ``connected``, ``reauthorised``,
    ``denied``, ``expired``, ``reused`` or ``exchange_failed``, with ``error`` saying why.
    """

    __tablename__ = "oauth_attempts"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session: Mapped[str] = mapped_column(String(64))
    integration: Mapped[str] = mapped_column(String(100))
    code_verifier: Mapped[str] = mapped_column(Text)
    redirect_uri: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(30))
    error: Mapped[str | None] = mapped_column(Text)
    connection: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_oauth_attempts_created_at", "created_at"),)
