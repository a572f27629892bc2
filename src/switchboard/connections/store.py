"""Integrations and connections in the database, and the catalog kept in step with them.

``attach`` runs once per process (the API's lifespan, a worker, a CLI command): it stores the
connections file's integrations and connections (idempotent; marked file-managed) and loads the
catalog. ``Watcher`` then reloads it whenever the ``connections`` store version moves; every
transaction that changes a connection or an integration calls :func:`bump`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from switchboard.connections.catalog import (
    EndUser,
    Entry,
    IntegrationEntry,
    InvalidConnection,
    fingerprint,
    masked_settings,
    revealed,
    validate,
)
from switchboard.connections.versions import CHANNEL, STORE, bump
from switchboard.connectors.crm import paused_reason
from switchboard.credentials import SecretBox, SecretKeyError, load_secret_box
from switchboard.db import Database, utcnow
from switchboard.events.versions import current_version
from switchboard.jobs.queue import wake
from switchboard.models import ConnectionRow, Integration

if TYPE_CHECKING:
    from switchboard.config import Config

log = structlog.get_logger("switchboard.connections")

REMOVED_FROM_FILE = "no longer in the connections file"


def seal(box: SecretBox, value: Mapping[str, Any]) -> str:
    return box.encrypt(json.dumps(value, default=str))


def unseal(box: SecretBox, value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    data = json.loads(box.decrypt(value))
    return data if isinstance(data, dict) else {}


def _unseal_or_none(box: SecretBox, value: str | None) -> dict[str, Any] | None:
    """What a file-managed row holds, or None when no key decrypts it (the secret key was
    replaced without ``credentials rekey``: the file's values are stored again)."""
    try:
        return unseal(box, value)
    except SecretKeyError:
        return None


def integration_entry(row: Integration, box: SecretBox) -> IntegrationEntry:
    return IntegrationEntry(
        name=row.name,
        provider=row.provider,
        settings=dict(row.settings or {}),
        secrets={k: str(v) for k, v in unseal(box, row.secrets).items()},
        file_managed=row.file_managed,
    )


def entry_of(
    row: ConnectionRow, raw: Mapping[str, Any], integration: IntegrationEntry | None
) -> Entry:
    """The catalog entry of a stored connection (its integration's defaults filled in)."""
    effective = integration.defaults_for(raw) if integration is not None else dict(raw)
    effective.setdefault("kind", row.kind)
    return Entry(
        id=row.id,
        alias=row.alias,
        settings=validate(effective, f"connections.{row.alias}."),
        integration=row.integration,
        account=row.account,
        end_user=EndUser(row.end_user_id, row.end_user_email, row.end_user_organisation),
        tags=tuple(row.tags or ()),
        status=row.status,
        status_reason=row.status_reason,
        file_managed=row.file_managed,
        created_at=row.created_at,
        updated_at=row.updated_at,
        fingerprint=fingerprint(effective),
    )


async def load(
    db: Database, box: SecretBox, previous: Mapping[str, Entry] | None = None
) -> tuple[list[Entry], list[IntegrationEntry], int]:
    """Every stored connection and integration, and the version they are at. An entry of
    ``previous`` whose row and integration have not changed since (by ``updated_at``, and its
    status and alias, which some writers change alone) is kept as it is: a reload after one
    change decrypts and validates that one connection, not all."""
    async with db.read_session() as session:
        version = await current_version(session, STORE)
        irows = (await session.scalars(select(Integration))).all()
        crows = (await session.scalars(select(ConnectionRow))).all()
    integrations = {}
    for irow in irows:
        try:
            integrations[irow.name] = integration_entry(irow, box)
        except (SecretKeyError, ValueError) as exc:
            # As an unloadable connection: left out (its connections go without its defaults,
            # and are left out in turn if they cannot do without), the rest loads.
            log.error("integration_unloadable", integration=irow.name, error=str(exc)[:300])
    integration_at = {r.name: r.updated_at for r in irows}
    entries = []
    for row in crows:
        integration = integrations.get(row.integration or "")
        stamp = (
            row.updated_at,
            row.status,
            row.status_reason,
            row.alias,
            integration_at.get(row.integration or ""),
        )
        known = (previous or {}).get(row.id)
        if known is not None and known.stamp == stamp:
            entries.append(known)
            continue
        try:
            raw = unseal(box, row.config)
            entries.append(replace(entry_of(row, raw, integration), stamp=stamp))
        except (InvalidConnection, SecretKeyError, ValueError) as exc:
            # Kept out of this process's catalog (its API answers 404 for it) rather than
            # stopping the process: the operator sees why in the log.
            log.error("connection_unloadable", connection=row.id, error=str(exc)[:300])
    return entries, list(integrations.values()), version


async def refresh(config: Config, db: Database, box: SecretBox) -> set[str]:
    """Reload the catalog if the stored version moved; the ids that changed."""
    async with db.read_session() as session:
        version = await current_version(session, STORE)
    if version == config.catalog.version:
        return set()
    previous = {e.id: e for e in config.catalog.entries()}
    entries, integrations, version = await load(db, box, previous)
    changed = config.catalog.replace(entries, integrations, version)
    resumed = [
        i
        for i in changed
        if (before := previous.get(i)) is not None
        and not before.active
        and (after := config.catalog.get(i)) is not None
        and after.active
    ]
    if resumed:
        # Jobs that wait for a paused connection look again a minute at a time; resumed, they go
        # now. Woken by each process once its own catalog sees the change, so a worker never
        # takes a woken job while it still holds the connection as paused (it would wait again).
        async with db.session() as session:
            for connection_id in resumed:
                await wake(session, reason=paused_reason(connection_id))
    return changed


async def store_file(config: Config, db: Database, box: SecretBox) -> bool:
    """Store the connections file's integrations and connections (file-managed); pause
    file-managed connections the file no longer has. True when anything changed. No change
    event: the file is configuration read at start, not a change made while running."""
    now = utcnow()
    changed = False
    async with db.session() as session:
        for name, spec in config.hub.integrations.items():
            secrets = spec.secret_values()
            public = spec.public() | {
                "has_client_secret": "client_secret" in secrets,
                "has_webhook_secret": "webhook_secret" in secrets,
            }
            irow = await session.get(Integration, name, with_for_update=True)
            if irow is None:
                session.add(
                    Integration(
                        name=name,
                        provider=spec.provider,
                        settings=public,
                        secrets=seal(box, secrets),
                        file_managed=True,
                        created_at=now,
                        updated_at=now,
                    )
                )
                changed = True
            elif (
                irow.provider,
                irow.settings,
                _unseal_or_none(box, irow.secrets),
                irow.file_managed,
            ) != (spec.provider, public, secrets, True):
                irow.provider, irow.settings, irow.file_managed = spec.provider, public, True
                irow.secrets = seal(box, secrets)
                irow.updated_at = now
                changed = True
        declared = config.file_entries()
        in_file = {e.id for e in declared}
        rows = {r.id: r for r in (await session.scalars(select(ConnectionRow))).all()}
        for entry in declared:
            raw = config.raw.get(entry.alias) or revealed(entry.settings)
            holder = next((r for r in rows.values() if r.alias == entry.alias), None)
            if holder is not None and holder.id != entry.id:
                # The name moved to another id (the file renamed its entries): the old one
                # keeps its data under its id, which becomes its alias.
                holder.alias = holder.id
                await session.flush()
                changed = True
            values = {
                "alias": entry.alias,
                "kind": entry.settings.kind,
                "integration": entry.integration,
                "account": entry.account,
                "end_user_id": entry.end_user.id,
                "end_user_email": entry.end_user.email,
                "end_user_organisation": entry.end_user.organisation,
                "tags": list(entry.tags),
                "settings": masked_settings(entry.settings),
                "file_managed": True,
            }
            row = rows.get(entry.id)
            if row is None:
                row = ConnectionRow(
                    id=entry.id,
                    config=seal(box, raw),
                    status="ok",
                    status_reason=None,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
                session.add(row)
                changed = True
                continue
            same = all(getattr(row, k) == v for k, v in values.items())
            stored = _unseal_or_none(box, row.config)
            if same and stored == raw and row.status_reason != REMOVED_FROM_FILE:
                continue
            for key, value in values.items():
                setattr(row, key, value)
            row.config = seal(box, raw)
            if row.status_reason == REMOVED_FROM_FILE:
                row.status, row.status_reason = "ok", None
            row.updated_at = now
            changed = True
        for row in rows.values():
            if row.file_managed and row.id not in in_file and row.status != "paused":
                row.status, row.status_reason = "paused", REMOVED_FROM_FILE
                row.updated_at = now
                changed = True
        if changed:
            await bump(session)
    return changed


async def attach(config: Config, db: Database) -> bool:
    """Store the file's connections and load every stored one into ``config.catalog``. False
    when the database cannot be used yet (down, not migrated): the process starts on the file's
    connections, and its :class:`Watcher` tries again."""
    box = load_secret_box(config.settings)
    try:
        await store_file(config, db, box)
        entries, integrations, version = await load(db, box)
    except (SQLAlchemyError, OSError) as exc:
        log.error("connections_unavailable", error=str(exc)[:300])
        return False
    config.catalog.replace(entries, integrations, version)
    return True


_watchers: weakref.WeakKeyDictionary[Database, Watcher] = weakref.WeakKeyDictionary()


def watcher_for(config: Config, db: Database) -> tuple[Watcher, bool]:
    """This process's watcher of ``db`` (one per database, shared by the API and an embedded
    runtime), and whether the caller created it (and so starts and stops it)."""
    existing = _watchers.get(db)
    if existing is not None:
        return existing, False
    watcher = _watchers[db] = Watcher(
        config, db, interval=config.settings.connections_poll_interval
    )
    return watcher, True


class Watcher:
    """Reloads a process's catalog when the stored one changes: a version check every
    ``interval`` seconds (one indexed row), so a change reaches every process within it; on
    PostgreSQL also at once, on the ``NOTIFY`` of the committing transaction (the check stays,
    for a notification lost with a dropped connection)."""

    def __init__(self, config: Config, db: Database, *, interval: float) -> None:
        self.config = config
        self.db = db
        self.interval = interval
        self._box = load_secret_box(config.settings)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._poke = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="connections-watcher")

    def poke(self) -> None:
        """Check now (this process just committed a change)."""
        self._poke.set()

    attached = True
    """False while the start-up :func:`attach` has not succeeded (the database was down or not
    migrated yet): each check tries it again first."""

    async def check(self) -> set[str]:
        if not self.attached:
            await store_file(self.config, self.db, self._box)
            self.attached = True
        return await refresh(self.config, self.db, self._box)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _listen(self) -> AsyncConnection | None:
        """A connection that ``LISTEN``s for changes (PostgreSQL; None elsewhere or when it
        cannot be had: the version check alone then finds the changes)."""
        if self.db.is_sqlite:
            return None
        try:
            conn = await self.db.engine.connect()
            schema = await conn.scalar(text("SELECT current_schema()"))
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(f"{CHANNEL}{schema}", lambda *_: self._poke.set())
        except (SQLAlchemyError, OSError) as exc:
            log.warning("connections_listen_failed", error=str(exc)[:300])
            return None
        return conn

    async def _loop(self) -> None:
        listener = await self._listen()
        try:
            await self._watch()
        finally:
            if listener is not None:
                with contextlib.suppress(SQLAlchemyError, OSError):
                    await listener.close()

    async def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                changed = await self.check()
                if changed:
                    log.info("connections_reloaded", changed=sorted(changed)[:20])
            except (SQLAlchemyError, OSError, SecretKeyError) as exc:
                log.warning("connections_reload_failed", error=str(exc)[:300])
            self._poke.clear()
            waits = [
                asyncio.ensure_future(self._stop.wait()),
                asyncio.ensure_future(self._poke.wait()),
            ]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED), self.interval
                )
            for waiting in waits:
                waiting.cancel()
