from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class Schedule(Base):
    """A named periodic schedule. ``next_run_at`` is advanced in the same transaction that
    enqueues the slot's job, which is what makes each slot fire once across processes."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    interval_seconds: Mapped[float | None] = mapped_column(Float)
    cron: Mapped[str | None] = mapped_column(String(100))
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_slot: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
