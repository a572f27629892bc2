"""The store's version: bumped in every transaction that changes what search shows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.db import insert, utcnow
from switchboard.models import StoreVersion

STORE = "events"
"""The ``store_versions`` row that every change of ``event_plans`` bumps."""


async def bump_version(session: AsyncSession, name: str = STORE) -> int:
    """Increment a store's version in the caller's transaction (the row stays locked until
    commit, so versions become visible in order)."""
    now = utcnow()
    stmt = insert(session, StoreVersion).values(name=name, version=1, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"version": StoreVersion.version + 1, "updated_at": now},
    ).returning(StoreVersion.version)
    version: int = (await session.execute(stmt)).scalar_one()
    return version


async def current_version(session: AsyncSession, name: str = STORE) -> int:
    version = await session.scalar(select(StoreVersion.version).where(StoreVersion.name == name))
    return int(version or 0)
