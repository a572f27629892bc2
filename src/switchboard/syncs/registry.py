"""How a connection syncs (a provider's :class:`Syncer`), and what one run gets and returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.db import Database
from switchboard.http import Outbound

if TYPE_CHECKING:
    from switchboard.config import Config, Connection

JOB_KIND = "syncs.run"
"""The job that runs one sync: payload ``{"connection": name, "full": bool}``."""
TICK_KIND = "syncs.tick"
"""What a connection's schedule fires: it enqueues ``syncs.run`` under the connection's key."""


def job_key(connection: str) -> str:
    return f"sync:{connection}"


@dataclass(frozen=True)
class SyncResult:
    """What one run did (``detail`` is free-form, shown in the runs listing)."""

    pages: int = 0
    upserted: int = 0
    deleted: int = 0
    skipped: int = 0
    errors: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyncContext:
    name: str
    connection: Connection
    config: Config
    db: Database
    outbound: Outbound
    full: bool = False
    job_id: int | None = None
    in_job: bool = True
    progress: Callable[[str], None] = lambda _message: None


@dataclass(frozen=True)
class Syncer:
    """How the connections of one provider sync (``Provider.syncer``).

    ``run`` must be idempotent and own its transactions (never nested); it raises ``AppError``
    subclasses (``TransientError``, ``TerminalError``) or ``RetryLater`` when the run failed.
    ``interval`` gives a connection's polling period (None: no schedule). ``summary`` adds the
    store's own counts to ``GET /connections/{name}``.
    """

    stream: str
    run: Callable[[SyncContext], Awaitable[SyncResult]]
    interval: Callable[[Connection], timedelta | None]
    summary: Callable[[AsyncSession, str], Awaitable[dict[str, Any]]] | None = None
