from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.models.base import Base


class ChangeCursor(Base):
    """Named counters of ``switchboard.changes``: ``sequence`` (the last ``seq`` given to an
    event; its row lock orders the commits of transactions that emitted) and ``dispatched``
    (the last ``seq`` fanned out to subscriptions)."""

    __tablename__ = "change_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
