"""Custom fields: a connection's extra CRM properties on contacts, and the values users give them.

Revision ID: 0015_custom_fields
Revises: 0013_batches
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_custom_fields"
# To be re-chained onto 0014_changes when both land.
down_revision: str | None = "0014_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without a default: an ALTER on both databases, no table rewrite. A stored
    # contact gets its custom fields at its next sync (the content hash includes them).
    op.add_column("contacts", sa.Column("fields", sa.JSON(), nullable=True))
    op.add_column("users", sa.Column("fields", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "fields")
    op.drop_column("contacts", "fields")
