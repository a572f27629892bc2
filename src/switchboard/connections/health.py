"""A connection's status follows its syncs.

:data:`ERROR_AFTER` failed runs in a row turn an ``ok`` connection to ``error`` (the reason
names the last error); its next successful run turns it back to ``ok``. Both changes are
``connection.updated`` events (``changed: ["status"]``) and reach every process's catalog like any
other change. An ``error`` connection stays scheduled and called: the status tells the product
what is wrong, the schedule keeps retrying (pausing is what stops it). ``needs_reauth`` and
``paused`` are left as they are: they have their own way back.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.changes.kinds import connection_event
from switchboard.connections.versions import bump
from switchboard.db import utcnow
from switchboard.models import ConnectionRow, SyncRun

ERROR_AFTER = 3
"""Failed sync runs in a row that set a connection's status to ``error``."""

_REASON_LIMIT = 1000


async def sync_finished(session: AsyncSession, connection_id: str, error: str | None) -> None:
    """Record a finished run's outcome in its connection's status (in the run's transaction)."""
    row = await session.get(ConnectionRow, connection_id)
    if row is None:
        return
    if error is None:
        if row.status != "error":
            return
        status, reason = "ok", None
    else:
        if row.status != "ok" or not await _failing(session, connection_id):
            return
        status = "error"
        reason = f"{ERROR_AFTER} syncs failed in a row; the last: {error}"[:_REASON_LIMIT]
    seen = row.status
    await session.refresh(row, with_for_update=True)  # an API change may have come between
    if row.status != seen:
        return
    row.status, row.status_reason, row.updated_at = status, reason, utcnow()
    await bump(session)
    await connection_event(session, "connection.updated", row, ["status"])


async def _failing(session: AsyncSession, connection_id: str) -> bool:
    """Whether the connection's last :data:`ERROR_AFTER` finished runs all failed."""
    outcomes = await session.scalars(
        select(SyncRun.outcome)
        .where(SyncRun.connection == connection_id, SyncRun.outcome != "running")
        .order_by(SyncRun.id.desc())
        .limit(ERROR_AFTER)
    )
    return list(outcomes) == ["failed"] * ERROR_AFTER
