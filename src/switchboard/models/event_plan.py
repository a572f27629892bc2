from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class EventPlan(Base):
    """One plan of an event provider's feed, as last seen (see ``switchboard.events``).

    ``id`` is the public UUIDv5 of ``(connection, base_plan_id, plan_id)``. Rows are never
    deleted: a plan that leaves the feed keeps its last values (``in_feed`` false). ``version``
    is the store version of the last change that matters to search, which is how each process's
    in-memory index loads only what changed.
    """

    __tablename__ = "event_plans"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    connection: Mapped[str] = mapped_column(String(100))
    base_plan_id: Mapped[str] = mapped_column(String(100))
    plan_id: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text)
    sell_mode: Mapped[str] = mapped_column(String(32))
    organizer_company_id: Mapped[str | None] = mapped_column(String(100))
    # The provider's wall-clock values (ISO, no offset), and the same instants in UTC.
    starts_local: Mapped[str] = mapped_column(String(19))
    ends_local: Mapped[str] = mapped_column(String(19))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sell_from: Mapped[str | None] = mapped_column(String(19))
    sell_to: Mapped[str | None] = mapped_column(String(19))
    sold_out: Mapped[bool] = mapped_column(Boolean)
    zones: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(BigInteger)
    min_price: Mapped[float | None] = mapped_column(Float)
    max_price: Mapped[float | None] = mapped_column(Float)
    ever_online: Mapped[bool] = mapped_column(Boolean)
    in_feed: Mapped[bool] = mapped_column(Boolean)
    content_hash: Mapped[str] = mapped_column(String(32))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("connection", "base_plan_id", "plan_id", name="uq_event_plans_identity"),
        Index("ix_event_plans_version", "version"),
    )
