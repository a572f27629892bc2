"""Jobs name their connection in a column of their own (indexed), not only in their payload.

A connection's jobs are looked up by it: the console's page of a connection lists them, and
deleting a connection cancels its pending ones. Filtering the JSON payload read every job.

Revision ID: 0017_jobs_connection
Revises: 0016_connections
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_jobs_connection"
down_revision: str | None = "0016_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("connection", sa.String(255), nullable=True))
    jobs = sa.table("jobs", sa.column("connection", sa.String()), sa.column("payload", sa.JSON()))
    # The jobs kept (pruned after their retention) carry it over from their payload.
    op.execute(jobs.update().values(connection=jobs.c.payload["connection"].as_string()))
    op.create_index("ix_jobs_connection", "jobs", ["connection", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_connection", table_name="jobs")
    op.drop_column("jobs", "connection")
