"""Change events: the change feed's events and sequence, event subscriptions, the delivery
attempt log.

Revision ID: 0014_changes
Revises: 0013_batches
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from switchboard.db import UTCDateTime

revision: str = "0014_changes"
down_revision: str | None = "0013_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "change_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("txn", sa.String(32), nullable=True),
        sa.Column("type", sa.String(60), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("connection", sa.String(100), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_change_events"),
        sa.UniqueConstraint("seq", name="uq_change_events_seq"),
    )
    op.create_index("ix_change_events_txn", "change_events", ["txn"])
    op.create_index("ix_change_events_created_at", "change_events", ["created_at"])
    op.create_index("ix_change_events_type_seq", "change_events", ["type", "seq"])
    op.create_table(
        "change_cursors",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_change_cursors"),
    )
    op.bulk_insert(
        sa.table("change_cursors", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
        [{"name": "sequence", "value": 0}, {"name": "dispatched", "value": 0}],
    )
    op.create_table(
        "event_subscriptions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("connection", sa.String(100), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_until", UTCDateTime(), nullable=True),
        sa.Column("after_seq", sa.BigInteger(), nullable=False),
        sa.Column("failing_since", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_subscriptions"),
    )
    op.create_table(
        "change_attempts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.String(40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_change_attempts"),
    )
    op.create_index("ix_change_attempts_subscription", "change_attempts", ["subscription_id", "id"])
    op.create_index("ix_change_attempts_event", "change_attempts", ["event_id", "subscription_id"])
    op.create_index("ix_change_attempts_created_at", "change_attempts", ["created_at"])


def downgrade() -> None:
    op.drop_table("change_attempts")
    op.drop_table("event_subscriptions")
    op.drop_table("change_cursors")
    op.drop_table("change_events")
