from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class Task(Base):
    """A task from a TODO app's webhooks. States are timestamps (UTC, from the events), so the
    state at any instant can be evaluated later: open until ``completed_at``/``deleted_at``."""

    __tablename__ = "tasks"

    pk: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    connection: Mapped[str] = mapped_column(String(100))
    task_id: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    content_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("connection", "task_id", name="uq_tasks_connection_task_id"),
        Index("ix_tasks_user_id", "user_id", "pk"),
    )

    @property
    def state(self) -> str:
        if self.deleted_at is not None:
            return "deleted"
        return "completed" if self.completed_at is not None else "open"
