"""Event feed: a staging table, so that an ingest's memory does not grow with the feed.

Revision ID: 0011_feed_staging
Revises: 0010_console_logins
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from switchboard.db import UTCDateTime

revision: str = "0011_feed_staging"
down_revision: str | None = "0010_console_logins"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_plan_staging",
        sa.Column("connection", sa.String(100), nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("base_plan_id", sa.String(100), nullable=False),
        sa.Column("plan_id", sa.String(100), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("sell_mode", sa.String(32), nullable=False),
        sa.Column("organizer_company_id", sa.String(100), nullable=True),
        sa.Column("starts_local", sa.String(19), nullable=False),
        sa.Column("ends_local", sa.String(19), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("sell_from", sa.String(19), nullable=True),
        sa.Column("sell_to", sa.String(19), nullable=True),
        sa.Column("sold_out", sa.Boolean(), nullable=False),
        sa.Column("zones", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.BigInteger(), nullable=False),
        sa.Column("min_price", sa.Float(), nullable=True),
        sa.Column("max_price", sa.Float(), nullable=True),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("connection", "id", name="pk_event_plan_staging"),
    )


def downgrade() -> None:
    op.drop_table("event_plan_staging")
