"""Migrations, on both databases: the newest one carries existing rows over, and the schema they
build is the one the models declare (no drift between the two)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from switchboard.config import Settings
from switchboard.db import Database
from switchboard.models import Base


@pytest.fixture
async def bare(settings: Settings) -> AsyncIterator[Database]:
    """A database with no migration applied yet."""
    database = Database(settings.database_url, schema=settings.database_schema, pool_size=2)
    yield database
    await database.dispose()


async def test_jobs_get_their_connection_from_their_payload(bare: Database) -> None:
    await bare.upgrade("0016_connections")
    async with bare.session() as session:
        for kind, payload in (
            ("syncs.run", {"connection": "crm", "full": False}),
            ("users.propagate", {"user": "u-1"}),
            ("odd", {"connection": 7}),
        ):
            await session.execute(
                text(
                    "INSERT INTO jobs (kind, payload, state, coalescing, attempts, deferrals,"
                    " run_at, created_at, updated_at) VALUES (:kind, :payload, 'pending', false,"
                    " 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"kind": kind, "payload": json.dumps(payload)},
            )
    await bare.upgrade()
    async with bare.read_session() as session:
        rows = (await session.execute(text("SELECT kind, connection FROM jobs"))).all()
    assert sorted((kind, conn) for kind, conn in rows) == [
        ("odd", "7"),  # a number carried over as its text; the queue sets only strings
        ("syncs.run", "crm"),
        ("users.propagate", None),
    ]


async def test_the_migrated_schema_is_the_models_schema(bare: Database) -> None:
    await bare.upgrade()

    def diff(sync: Any) -> list[Any]:
        context = MigrationContext.configure(
            sync,
            opts={
                "compare_type": False,  # the dialects' own spellings of one type differ
                "include_name": lambda name, kind, _: kind != "table" or name != "alembic_version",
            },
        )
        return list(compare_metadata(context, Base.metadata))

    async with bare.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
