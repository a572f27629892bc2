from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class Integration(Base):
    """A provider plus the app's credentials (``switchboard.connections``).

    ``settings`` holds what is not secret (client id, scopes, authorize/token URL overrides, the
    base URL its connections default to); ``secrets`` the Fernet ciphertext of a JSON object
    (client secret, webhook secret). ``file_managed``: declared in the connections file,
    read-only through the API.
    """

    __tablename__ = "integrations"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    secrets: Mapped[str | None] = mapped_column(Text)
    file_managed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
