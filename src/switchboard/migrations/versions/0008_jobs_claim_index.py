"""Jobs: claims walk (state, kind, run_at), replacing (kind, state).

A claim takes one kind at a time from this index, so a backlog of one kind no longer makes the
claims of the other kinds scan it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_state_kind_run_at", "jobs", ["state", "kind", "run_at"])
    op.drop_index("ix_jobs_kind_state", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_kind_state", "jobs", ["kind", "state"])
    op.drop_index("ix_jobs_state_kind_run_at", table_name="jobs")
