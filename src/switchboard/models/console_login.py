from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class ConsoleLogin(Base):
    """One live console session (a login with an API key).

    The cookie's signature proves who issued it; this row proves it was not ended since: logout
    deletes it, so a replayed cookie is refused by every process. Rows past ``expires_at`` are
    dead anyway and are pruned at each login.
    """

    __tablename__ = "console_logins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 of the session's nonce (hex): the row alone does not rebuild a cookie."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
