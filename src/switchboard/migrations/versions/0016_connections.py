"""Connections as data: integrations, connections, connect sessions and OAuth attempts.

Today's data needs no rewrite: a connection declared in the connections file keeps its name as
its immutable id, which is what contacts, users, tasks, runs, schedules, credentials and budgets
are keyed by already (so public contact ids do not change). Those connections are stored in
the new table at the first start, from the file.

Revision ID: 0016_connections
Revises: 0015_custom_fields
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from switchboard.db import UTCDateTime

revision: str = "0016_connections"
down_revision: str | None = "0015_custom_fields"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("file_managed", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_integrations"),
    )
    op.create_table(
        "connections",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("integration", sa.String(100), nullable=True),
        sa.Column("account", sa.String(200), nullable=True),
        sa.Column("end_user_id", sa.String(200), nullable=True),
        sa.Column("end_user_email", sa.String(320), nullable=True),
        sa.Column("end_user_organisation", sa.String(200), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("file_managed", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connections"),
        sa.UniqueConstraint("alias", name="uq_connections_alias"),
    )
    op.create_index("ix_connections_end_user_id", "connections", ["end_user_id"])
    op.create_index("ix_connections_integration_account", "connections", ["integration", "account"])
    op.create_table(
        "connect_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("integration", sa.String(100), nullable=False),
        sa.Column("connection", sa.String(100), nullable=True),
        sa.Column("end_user_id", sa.String(200), nullable=True),
        sa.Column("end_user_email", sa.String(320), nullable=True),
        sa.Column("end_user_organisation", sa.String(200), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("return_url", sa.Text(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_connect_sessions"),
    )
    op.create_index("ix_connect_sessions_expires_at", "connect_sessions", ["expires_at"])
    op.create_table(
        "oauth_attempts",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("session", sa.String(64), nullable=False),
        sa.Column("integration", sa.String(100), nullable=False),
        sa.Column("code_verifier", sa.Text(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(30), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("connection", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name="pk_oauth_attempts"),
    )
    op.create_index("ix_oauth_attempts_created_at", "oauth_attempts", ["created_at"])


def downgrade() -> None:
    op.drop_table("oauth_attempts")
    op.drop_table("connect_sessions")
    op.drop_table("connections")
    op.drop_table("integrations")
