"""Contacts: a creation time for every contact.

Mapped CRMs publish none, and ``created_at`` stayed empty; the store now records when the hub
first stored a contact. Rows stored before have no record of that: they get the time they were
last stored, the earliest the hub still knows.

Revision ID: 0009_contacts_created_at
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_contacts_created_at"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE contacts SET created_at = stored_at WHERE created_at IS NULL")


def downgrade() -> None:
    pass  # the backfilled times are indistinguishable from recorded ones; keeping them is harmless
