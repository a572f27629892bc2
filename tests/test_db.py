"""SQLite writers of different processes (here: another connection) wait for each other."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from switchboard import db as db_module
from switchboard.db import Database


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    await database.upgrade()
    yield database
    await database.dispose()


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """What another process's writer does: take SQLite's write lock and keep it."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "INSERT INTO schedules VALUES ('x', 'k', '{}', 1, NULL, '2026-01-01', NULL, '2026-01-01')"
    )
    return other


async def test_a_writer_waits_for_another_processs_transaction_then_proceeds(
    sqlite_db: Database, tmp_path: Path
) -> None:
    other = hold_write_lock(tmp_path / "hub.db")
    released_at: list[float] = []

    async def release_soon() -> None:
        await asyncio.sleep(0.2)
        released_at.append(time.monotonic())
        other.execute("COMMIT")

    releaser = asyncio.create_task(release_soon())
    async with sqlite_db.session() as session:  # begins (BEGIN IMMEDIATE) at the statement
        count = await session.scalar(text("SELECT count(*) FROM schedules"))
        began = time.monotonic()
    await releaser
    assert released_at and began >= released_at[0]  # it waited for the lock
    assert count == 1  # and, having begun after the other commit, sees its row
    other.close()


async def test_a_writer_gives_up_after_the_busy_timeout_with_a_database_error(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "_BUSY_TIMEOUT", 0.1)
    other = hold_write_lock(tmp_path / "hub.db")
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with sqlite_db.session() as session:
                await session.execute(text("SELECT 1"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with sqlite_db.session() as session:  # the connection is usable again
        assert await session.scalar(text("SELECT 1")) == 1


async def test_readers_are_not_held_up_by_a_writer(sqlite_db: Database, tmp_path: Path) -> None:
    other = hold_write_lock(tmp_path / "hub.db")
    try:
        async with sqlite_db.read_session() as session:
            assert await session.scalar(text("SELECT count(*) FROM schedules")) == 0
    finally:
        other.execute("ROLLBACK")
        other.close()
