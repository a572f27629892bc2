"""Contacts stored before creation times were recorded get one when the schema is upgraded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, insert, select

from switchboard.config import Settings
from switchboard.db import Database
from switchboard.models import Contact

TABLE = cast(Table, Contact.__table__)


async def test_upgrade_fills_missing_created_at_from_stored_at(settings: Settings) -> None:
    db = Database(settings.database_url, schema=settings.database_schema, pool_size=2)
    try:
        await db.upgrade("0008")
        stored = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        created = datetime(2025, 1, 1, tzinfo=UTC)
        row = {
            "connection": "acme",
            "content_hash": "h",
            "stored_at": stored,
            "updated_at": stored,
        }
        async with db.session() as session:
            await session.execute(
                insert(TABLE),
                [
                    row | {"id": "a", "external_id": "1", "created_at": None},
                    row | {"id": "b", "external_id": "2", "created_at": created},
                ],
            )
        await db.upgrade()
        async with db.read_session() as session:
            times = dict((await session.execute(select(TABLE.c.id, TABLE.c.created_at))).all())
        assert times == {"a": stored, "b": created}
    finally:
        await db.dispose()
