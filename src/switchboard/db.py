"""Database access for SQLite and PostgreSQL; every dialect difference lives in this module.

* SQLite (aiosqlite): WAL mode, ``busy_timeout``, foreign keys on. pysqlite's own transaction
  handling is switched off and we emit ``BEGIN`` ourselves (the SQLAlchemy-documented recipe), so a
  writer can ask for ``BEGIN IMMEDIATE``: it takes the write lock up front instead of failing with
  ``SQLITE_BUSY`` when a read transaction later tries to write.
* PostgreSQL (asyncpg): an optional schema (``search_path``) per process; migrations run under an
  advisory lock so several processes starting at once migrate once.

Sessions have one owner: :meth:`Database.session` (immediate on SQLite) for units of work that
write, :meth:`Database.read_session` for reads. The owner commits; services only ``flush()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import DateTime, Dialect, Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_

MIGRATIONS = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for another process's transaction
_BUSY_POLL = 0.004  # and how often it looks
_MIGRATION_LOCK = 7_314_159_265  # pg_advisory_lock key for "switchboard migrations"


async def lock_keys(session: AsyncSession, keys: Iterable[str]) -> None:
    """Serialise transactions that touch the same logical keys until this transaction ends.

    PostgreSQL: transaction-scoped advisory locks on 64-bit hashes of the keys, taken in one
    statement in sorted order (two transactions locking overlapping sets cannot deadlock).
    SQLite: nothing to do, a write transaction (``BEGIN IMMEDIATE``) already excludes every
    other writer.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    hashes = sorted(
        {
            int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "big", signed=True)
            for k in keys
        }
    )
    if hashes:
        await session.execute(
            text(
                "SELECT pg_advisory_xact_lock(k) FROM "
                "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) AS ordered"
            ),
            {"keys": hashes},
        )


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both dialects.

    SQLite has no time zones: values are stored as naive UTC text (which sorts correctly) and
    come back with ``tzinfo=UTC``. Naive values given to us are taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert(session: AsyncSession, table: Table | type[Any]) -> Any:
    """The session dialect's ``INSERT``; both support ``on_conflict_do_update/do_nothing``."""
    dialect = session.get_bind().dialect.name
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)


def json_text(column: Any, key: str) -> Any:
    """The text of ``key`` in a JSON object column, SQL ``NULL`` when absent or null: SQLite's
    ``json_extract(column, '$."key"')``, PostgreSQL's ``column ->> 'key'`` (the key is bound
    and quoted, never spliced). For an exact match: ``json_text(Contact.fields, "plan") ==
    "gold"``."""
    return column[key].as_string()


class Database:
    """Engines and session factories for one database URL."""

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 10) -> None:
        self.url = url
        self.schema = schema
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        if self.dialect == "sqlite":
            _make_private(url)
            # Readers and writers get their own connections: writers begin with BEGIN
            # IMMEDIATE and wait for another process's writer their own way (_configure_sqlite).
            self.engine = create_async_engine(url, connect_args={"timeout": _BUSY_TIMEOUT})
            _configure_sqlite(self.engine, writer=False)
            self.write_engine = create_async_engine(url, connect_args={"timeout": _BUSY_TIMEOUT})
            _configure_sqlite(self.write_engine, writer=True)
        else:
            server_settings = {"application_name": "switchboard"}
            if schema:
                server_settings["search_path"] = schema
            self.engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                connect_args={"server_settings": server_settings},
            )
            self.write_engine = self.engine
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that writes: commits on success, rolls back on error.

        On SQLite, writers of this process queue on an asyncio lock first: SQLite admits one
        writer at a time anyway, and waiting here costs nothing, whereas connections contending
        inside SQLite sleep in its busy handler (milliseconds each time). Do not open a write
        session while holding another one in the same task.
        """
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work (a deferred transaction on SQLite)."""
        async with self._read_sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations (once, even when several processes start together)."""
        async with self.write_engine.connect() as conn:
            if self.dialect == "postgresql":
                if self.schema:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                    await conn.commit()
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            try:
                await conn.run_sync(_run_upgrade, revision)
                await conn.commit()
            finally:
                if self.dialect == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK}
                    )
                    await conn.commit()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()


def _make_private(url: str) -> None:
    """Make the SQLite file (which holds personal data and raw webhook bodies) readable by its
    owner only: created 0600 before SQLite opens it, whatever the umask, and an existing file
    (or its -wal/-shm) that others may read is set to 0600. SQLite gives the -wal and -shm
    files it creates the main file's mode, so they follow."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    except OSError:
        return  # e.g. a missing directory: SQLite reports it when it opens the file
    else:
        try:
            os.fchmod(fd, 0o600)  # the umask may have removed the owner's bits
        finally:
            os.close(fd)
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except OSError:  # absent, or not ours to change
            continue


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _run_upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _configure_sqlite(engine: AsyncEngine, *, writer: bool) -> None:
    """Connections of one process's readers (``writer=False``) or writers.

    A writer that finds another process's writer holding the lock must wait. SQLite's own busy
    handler sleeps longer and longer (up to 100 ms at a time) whatever the lock's holder does,
    which made PATCH p99 jump to hundreds of ms with an API and a worker process on one file.
    Writer connections instead fail fast (``busy_timeout=0``) and ``BEGIN IMMEDIATE`` retries
    every few milliseconds, up to the usual timeout. Inside a transaction begun that way no
    statement can meet a lock, so nothing else needs the busy handler.
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below (SQLAlchemy's pysqlite recipe).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={0 if writer else int(_BUSY_TIMEOUT * 1000)}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to aiosqlite: one trip to its thread instead of three (cursor, execute,
        # close) through the DBAPI adapter; every transaction begins here.
        driver = conn.connection.driver_connection
        assert driver is not None  # an open connection
        statement = "BEGIN IMMEDIATE" if writer else "BEGIN"
        deadline = time.monotonic() + _BUSY_TIMEOUT
        pause = 0.0005
        while True:
            try:
                await_(driver.execute(statement))
                return
            except sqlite3.Error as exc:
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not (writer and busy and time.monotonic() + pause < deadline):
                    # What SQLAlchemy raises for a failed statement (callers catch its errors).
                    raise OperationalError(statement, None, exc) from exc
            await_(asyncio.sleep(pause))
            pause = min(pause * 2, _BUSY_POLL)
