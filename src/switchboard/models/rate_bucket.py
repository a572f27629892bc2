from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class RateBucket(Base):
    """The shared rate budget of one (connection, endpoint class): the wall-clock times of the
    grants still inside ``window_seconds`` plus the safety margin (see ``switchboard.http``).

    Updated only under a row lock (``FOR UPDATE`` / ``BEGIN IMMEDIATE``), which is what keeps
    several processes from spending the same token."""

    __tablename__ = "rate_buckets"

    connection: Mapped[str] = mapped_column(String(100), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(100), primary_key=True)
    capacity: Mapped[int] = mapped_column(Integer)
    window_seconds: Mapped[float] = mapped_column(Float)
    grants: Mapped[list[float]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
