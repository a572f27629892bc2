"""Batches: the batch a job ran in (batch handlers hand a worker's claim over together), and
users by CRM contact (a CRM webhook is matched to the hub's own writes without a scan).

Revision ID: 0013_batches
Revises: 0012_webhook_bounds
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_batches"
down_revision: str | None = "0012_webhook_bounds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: an ALTER on both databases, no table rewrite.
    op.add_column("jobs", sa.Column("batch", sa.BigInteger().with_variant(sa.Integer(), "sqlite")))
    op.create_index("ix_users_crm_contact", "users", ["crm_connection", "crm_contact_id"])


def downgrade() -> None:
    op.drop_index("ix_users_crm_contact", table_name="users")
    op.drop_column("jobs", "batch")
