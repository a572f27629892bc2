"""Which tiers of the suite can run here, and a local PostgreSQL found without configuration.

The SQLite tier always runs. The PostgreSQL tier runs when ``SWITCHBOARD_TEST_DATABASE_URL`` is
set or, failing that, when a PostgreSQL answers on 127.0.0.1:5432 without a password (the suite
then creates a database of its own and drops it at the end). The browser tier needs Debian's
Chromium and Playwright. Under ``CI=true`` nothing may be left out.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

ENV = "SWITCHBOARD_TEST_DATABASE_URL"
LOCAL_PG = ("127.0.0.1", 5432)
CHROMIUM = Path("/usr/bin/chromium")


@dataclass(frozen=True)
class LeftOut:
    tier: str
    why: str
    command: str


def _admin_url(database: str) -> str:
    return f"postgresql://postgres@{LOCAL_PG[0]}:{LOCAL_PG[1]}/{database}"


async def _admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_admin_url("postgres"), timeout=3)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


def create_local_database() -> str | None:
    """Create a fresh database on the local PostgreSQL and return its URL (None: none usable)."""
    if not _answers(LOCAL_PG):
        return None
    name = f"switchboard_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception:  # any refusal (auth, permissions) means "no usable local PostgreSQL"
        return None
    return f"postgresql+asyncpg://postgres@{LOCAL_PG[0]}:{LOCAL_PG[1]}/{name}"


def drop_local_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def left_out(pg_url: str | None) -> list[LeftOut]:
    """The tiers this run cannot cover, why, and how to run them."""
    missing: list[LeftOut] = []
    if not pg_url:
        missing.append(
            LeftOut(
                "PostgreSQL",
                f"{ENV} is empty"
                if os.environ.get(ENV) == ""
                else f"{ENV} is not set and no PostgreSQL answers on "
                f"{LOCAL_PG[0]}:{LOCAL_PG[1]} (trust auth)",
                f"{ENV}=postgresql+asyncpg://USER@HOST:5432/DB make test",
            )
        )
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing")
    if importlib.util.find_spec("playwright") is None:
        problems.append("playwright is not installed")
    if problems:
        missing.append(
            LeftOut(
                "browser (console end-to-end)",
                "; ".join(problems),
                "apt-get install chromium && make test",
            )
        )
    return missing


def is_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
