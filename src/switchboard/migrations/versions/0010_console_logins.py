"""Console sessions: one row per live login, so that logout ends it in every process.

Revision ID: 0010_console_logins
Revises: 0009_contacts_created_at
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from switchboard.db import UTCDateTime

revision: str = "0010_console_logins"
down_revision: str | None = "0009_contacts_created_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_logins",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_console_logins"),
    )
    op.create_index("ix_console_logins_expires_at", "console_logins", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_console_logins_expires_at", table_name="console_logins")
    op.drop_table("console_logins")
