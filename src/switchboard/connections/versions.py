"""The catalog's version: every transaction that changes a connection or an integration bumps
it, and every process reloads its catalog when it moves (``switchboard.connections.store``).

A low module: the credentials layer bumps it too (a connection that needs re-authorisation).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.events.versions import bump_version

STORE = "connections"
"""The ``store_versions`` row every change of a connection or an integration bumps."""

CHANNEL = "switchboard_connections_"
"""PostgreSQL ``NOTIFY`` channel prefix; the schema's name completes it (so hubs sharing a
server in different schemas do not wake each other)."""


async def bump(session: AsyncSession) -> int:
    """Mark the catalog changed, in the caller's transaction (every process reloads; on
    PostgreSQL a ``NOTIFY``, delivered at commit, wakes them at once)."""
    version = await bump_version(session, STORE)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:prefix || current_schema(), :version)"),
            {"prefix": CHANNEL, "version": str(version)},
        )
    return version
