from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class EventPlanStaging(Base):
    """The plans of the feed document being ingested, written in bounded chunks as it is parsed
    (see ``switchboard.events.service``).

    A document is applied to ``event_plans`` in one transaction only once it has been read
    whole and found to be a feed, so a failed or oversized fetch changes nothing; staging
    through the database keeps the ingest's memory independent of the number of plans. Rows
    live for one run of one connection: each run starts and ends by clearing its connection's.
    """

    __tablename__ = "event_plan_staging"

    connection: Mapped[str] = mapped_column(String(100), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    base_plan_id: Mapped[str] = mapped_column(String(100))
    plan_id: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text)
    sell_mode: Mapped[str] = mapped_column(String(32))
    organizer_company_id: Mapped[str | None] = mapped_column(String(100))
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
    content_hash: Mapped[str] = mapped_column(String(32))
