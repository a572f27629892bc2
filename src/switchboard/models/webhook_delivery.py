from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import UTCDateTime
from switchboard.models.base import Base


class WebhookDelivery(Base):
    """Every inbound webhook request, raw, with the answer it got (the audit trail).

    ``dedupe_key`` is the sender's delivery id (e.g. Standard Webhooks' ``webhook-id``) or a hash
    of the body when unsigned; a redelivery finds the row and gets the same answer, no effect.
    Rejected requests (bad signature) get a unique key so they never shadow a real delivery.

    A delivery that was not applied keeps only a prefix of its body (``body_bytes`` is the size
    it had), so anyone who can reach the port cannot fill the disk; ``stored_bytes`` (body and
    detail as stored) lets the pruner bound the log's total size without reading the bodies.
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    connection: Mapped[str] = mapped_column(String(100))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(String(64))
    body_bytes: Mapped[int | None] = mapped_column(Integer)
    stored_bytes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        UniqueConstraint("connection", "dedupe_key", name="uq_webhook_deliveries_key"),
        Index("ix_webhook_deliveries_connection_id", "connection", "id"),
        Index("ix_webhook_deliveries_received_at", "received_at"),
    )
