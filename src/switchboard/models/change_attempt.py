from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class ChangeAttempt(Base):
    """One attempt to deliver an event to a subscription: the attempt log (pruned after
    ``SWITCHBOARD_EVENTS_RETENTION``). ``outcome``: ``succeeded``, ``retry`` (failed, will be
    tried again), ``failed`` (given up, or the subscription is disabled)."""

    __tablename__ = "change_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[int] = mapped_column(BigInteger)
    subscription_id: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_change_attempts_subscription", "subscription_id", "id"),
        Index("ix_change_attempts_event", "event_id", "subscription_id"),
        Index("ix_change_attempts_created_at", "created_at"),
    )
