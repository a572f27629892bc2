"""Webhook deliveries: bounded storage of rejected deliveries, pruning by age and size.

Adds the client address and original body size of each delivery, the bytes it stores (what the
size bound counts) and an index for pruning by age. Existing rows count their stored text.

Revision ID: 0012_webhook_bounds
Revises: 0011_feed_staging
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_webhook_bounds"
down_revision: str | None = "0011_feed_staging"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("client", sa.String(64), nullable=True))
        batch.add_column(sa.Column("body_bytes", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("stored_bytes", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE webhook_deliveries SET stored_bytes = length(body) + coalesce(length(detail), 0)"
    )
    op.create_index("ix_webhook_deliveries_received_at", "webhook_deliveries", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_received_at", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("stored_bytes")
        batch.drop_column("body_bytes")
        batch.drop_column("client")
