from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base

JOB_STATES = ("pending", "running", "succeeded", "dead")


class Job(Base):
    """A unit of durable background work (see ``switchboard.jobs``).

    ``pending_key`` is ``kind + key`` while a coalescing job is pending and NULL otherwise; its
    unique index is what guarantees "at most one pending job per key" under concurrent enqueues
    on both databases (NULLs never collide).
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(100))
    key: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    coalescing: Mapped[bool] = mapped_column(Boolean, default=False)
    pending_key: Mapped[str | None] = mapped_column(String(400), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deferrals: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    batch: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    """The batch of its latest run (the id of the batch's first job); NULL when it ran alone."""
    connection: Mapped[str | None] = mapped_column(String(255))
    """The connection it works for (its payload's ``connection``), for a connection's jobs."""

    __table_args__ = (
        Index("ix_jobs_state_run_at", "state", "run_at", "id"),
        Index("ix_jobs_key_state", "key", "state", "id"),
        Index("ix_jobs_state_kind_run_at", "state", "kind", "run_at"),
        Index("ix_jobs_connection", "connection", "id"),
    )
