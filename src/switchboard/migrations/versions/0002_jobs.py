"""Durable jobs and schedules.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from switchboard.db import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("key", sa.String(255), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("coalescing", sa.Boolean(), nullable=False),
        sa.Column("pending_key", sa.String(400), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("deferrals", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("run_at", UTCDateTime(), nullable=False),
        sa.Column("deadline", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("pending_key", name="uq_jobs_pending_key"),
    )
    op.create_index("ix_jobs_state_run_at", "jobs", ["state", "run_at", "id"])
    op.create_index("ix_jobs_key_state", "jobs", ["key", "state", "id"])
    op.create_index("ix_jobs_kind_state", "jobs", ["kind", "state"])
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=True),
        sa.Column("cron", sa.String(100), nullable=True),
        sa.Column("next_run_at", UTCDateTime(), nullable=False),
        sa.Column("last_slot", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_schedules"),
    )


def downgrade() -> None:
    op.drop_table("schedules")
    op.drop_index("ix_jobs_kind_state", table_name="jobs")
    op.drop_index("ix_jobs_key_state", table_name="jobs")
    op.drop_index("ix_jobs_state_run_at", table_name="jobs")
    op.drop_table("jobs")
