"""Event feed store, feed state, store versions and sync runs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from switchboard.db import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_plans",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("connection", sa.String(100), nullable=False),
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
        sa.Column("ever_online", sa.Boolean(), nullable=False),
        sa.Column("in_feed", sa.Boolean(), nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_plans"),
        sa.UniqueConstraint(
            "connection", "base_plan_id", "plan_id", name="uq_event_plans_identity"
        ),
    )
    op.create_index("ix_event_plans_version", "event_plans", ["version"])
    op.create_table(
        "feed_states",
        sa.Column("connection", sa.String(100), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("document_hash", sa.String(64), nullable=True),
        sa.Column("last_success_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connection", name="pk_feed_states"),
    )
    op.create_table(
        "store_versions",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_store_versions"),
    )
    op.create_table(
        "sync_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("connection", sa.String(100), nullable=False),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("upserted", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
    )
    op.create_index("ix_sync_runs_connection_id", "sync_runs", ["connection", "id"])


def downgrade() -> None:
    op.drop_index("ix_sync_runs_connection_id", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_table("store_versions")
    op.drop_table("feed_states")
    op.drop_index("ix_event_plans_version", table_name="event_plans")
    op.drop_table("event_plans")
