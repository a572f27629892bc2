"""Which connection kinds can sync, and how."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.config import Config, Connection
from switchboard.db import Database
from switchboard.http import Outbound

# Modules whose import registers a syncer (a feature adds its own line here).
SYNC_MODULES = ("switchboard.events.tasks", "switchboard.contacts.tasks")

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
    """How connections of one kind sync.

    ``run`` must be idempotent and own its transactions (never nested); it raises ``AppError``
    subclasses (``TransientError``, ``TerminalError``) or ``RetryLater`` when the run failed.
    ``interval`` gives a connection's polling period (None: no schedule). ``summary`` adds the
    store's own counts to ``GET /connections/{name}``.
    """

    connection_kind: str
    stream: str
    run: Callable[[SyncContext], Awaitable[SyncResult]]
    interval: Callable[[Connection], timedelta | None]
    summary: Callable[[AsyncSession, str], Awaitable[dict[str, Any]]] | None = None


_syncers: dict[str, Syncer] = {}
_loaded = False


def register(syncer: Syncer) -> Syncer:
    existing = _syncers.get(syncer.connection_kind)
    if existing is not None and existing != syncer:
        raise ValueError(f"a syncer for {syncer.connection_kind!r} is already registered")
    _syncers[syncer.connection_kind] = syncer
    return syncer


def load() -> None:
    """Import the modules that register syncers (and the sync job handlers)."""
    global _loaded
    if _loaded:
        return
    importlib.import_module("switchboard.syncs.tasks")
    for module in SYNC_MODULES:
        importlib.import_module(module)
    _loaded = True


def syncer_for(kind: str) -> Syncer | None:
    load()
    return _syncers.get(kind)
