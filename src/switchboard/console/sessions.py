"""The store of live console sessions: a login adds a row, logout deletes it, every request
checks it. Signed cookies alone cannot be revoked; this table makes logout final in every
process of the cluster. Open sessions (no API key configured) are not stored: they have no
login to end."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.console.security import SESSION_TTL, Session
from switchboard.models import ConsoleLogin


def _id(session: Session) -> str:
    return hashlib.sha256(session.nonce.encode()).hexdigest()


async def start(db: AsyncSession, session: Session) -> None:
    """Record a new login, and drop the logins that have expired (so the table holds at most
    the logins of one session lifetime)."""
    now = datetime.now(UTC)
    await db.execute(delete(ConsoleLogin).where(ConsoleLogin.expires_at < now))
    issued = datetime.fromtimestamp(session.issued, UTC)
    db.add(
        ConsoleLogin(
            id=_id(session), created_at=issued, expires_at=issued + timedelta(seconds=SESSION_TTL)
        )
    )
    await db.flush()


async def is_live(db: AsyncSession, session: Session) -> bool:
    row = await db.get(ConsoleLogin, _id(session))
    return row is not None and row.expires_at > datetime.now(UTC)


async def end(db: AsyncSession, session: Session) -> None:
    await db.execute(delete(ConsoleLogin).where(ConsoleLogin.id == _id(session)))
