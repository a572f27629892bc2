"""SQLite files hold personal data and raw webhook bodies: owner-only (0600), whatever the umask."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from switchboard.db import Database


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default, under which files are created 0644
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
async def test_a_new_database_and_its_wal_files_are_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "hub.db"
    db = Database(f"sqlite+aiosqlite:///{'./hub.db' if relative else path}")
    try:
        await db.upgrade()
        async with db.session() as session:
            await session.execute(
                text("INSERT INTO console_logins VALUES ('x', '2026-01-01', '2026-01-02')")
            )
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert [mode(f) for f in files] == [0o600, 0o600, 0o600]
    finally:
        await db.dispose()


async def test_an_existing_readable_database_is_made_0600(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    other = sqlite3.connect(path)  # as an earlier version left it: 0644, WAL files present
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    assert [mode(f) for f in files] == [0o644, 0o644, 0o644]
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        assert [mode(f) for f in files] == [0o600, 0o600, 0o600]
    finally:
        await db.dispose()
        other.close()


def test_an_in_memory_database_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Database("sqlite+aiosqlite:///:memory:")
    assert list(tmp_path.iterdir()) == []
