from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class ChangeEvent(Base):
    """Something the hub changed, for the change feed and webhooks (``switchboard.changes``).

    Written in the transaction of the change it describes, with ``seq`` NULL and ``txn`` the
    writing transaction's token; that transaction's commit gives it its ``seq`` (and clears
    ``txn``). Readers only ever see rows with a ``seq``. ``subject`` names the object the event
    is about (``contact:<id>``): deliveries of one subject to one subscription go in order.
    """

    __tablename__ = "change_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    txn: Mapped[str | None] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(300))
    connection: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_change_events_txn", "txn"),
        Index("ix_change_events_created_at", "created_at"),
        Index("ix_change_events_type_seq", "type", "seq"),
    )
