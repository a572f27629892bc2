from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class ReportCursor(Base):
    """The end of the last window a scheduled report wrote; it advances only after the window's
    files are on disk, so a crash re-runs the window (same file names) instead of skipping it."""

    __tablename__ = "report_cursors"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
