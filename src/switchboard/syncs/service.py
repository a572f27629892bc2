"""Sync runs: start, finish, execute, enqueue, list, summarise."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.changes import kinds as changes
from switchboard.connections import health
from switchboard.db import Database, utcnow
from switchboard.errors import AppError, BadRequest, Conflict, NotFound
from switchboard.http import Outbound
from switchboard.jobs import RetryLater, ScheduleSpec, enqueue
from switchboard.jobs.queue import pending_payloads
from switchboard.models import SyncRun
from switchboard.settings import process_alive
from switchboard.syncs import metrics
from switchboard.syncs.registry import (
    JOB_KIND,
    TICK_KIND,
    SyncContext,
    Syncer,
    SyncResult,
    job_key,
)

if TYPE_CHECKING:
    from switchboard.config import Config, Connection

log = structlog.get_logger("switchboard.syncs")

STALE_AFTER = timedelta(hours=1)
"""A run still marked running after this long was abandoned (its process died)."""


class SyncBusy(Conflict):
    """Another sync of this connection is running."""


def resolve(config: Config, name: str, *, to_run: bool = False) -> Syncer:
    """The syncer of connection ``name``: ``NotFound`` or ``BadRequest`` (kind cannot sync),
    and with ``to_run`` a ``Conflict`` when the connection is paused."""
    entry = config.entry(name)
    if entry is None:
        raise NotFound(f"No connection named {name!r}")
    conn = entry.settings
    syncer = config.provider_of(conn).syncer
    if syncer is None:
        raise BadRequest(f"Connection {name!r} ({conn.kind}) has nothing to sync")
    if to_run and not entry.active:
        raise Conflict(f"Connection {name!r} is paused")
    return syncer


_OWNER = {"host": socket.gethostname(), "pid": os.getpid()}


def _abandoned(run: SyncRun, now: datetime, job_id: int | None) -> bool:
    """A running run whose process died: an earlier attempt of this same job, a CLI run whose
    process on this host is gone, or any run older than :data:`STALE_AFTER`."""
    if run.started_at < now - STALE_AFTER:
        return True
    if job_id is not None and run.job_id == job_id:
        return True
    owner = (run.detail or {}).get("owner")
    if run.job_id is None and isinstance(owner, dict) and owner.get("host") == _OWNER["host"]:
        return not process_alive(int(owner.get("pid", 0)))
    return False


async def begin_run(
    session: AsyncSession, connection: str, stream: str, *, job_id: int | None = None
) -> SyncRun:
    """Record a running run, or raise :class:`SyncBusy` while another one is running.

    A run left ``running`` by an earlier attempt of the same job, or for longer than
    :data:`STALE_AFTER`, was abandoned by a process that died: it is closed as failed.
    """
    now = utcnow()
    running = (
        await session.scalars(
            select(SyncRun)
            .where(SyncRun.connection == connection, SyncRun.outcome == "running")
            .with_for_update()
        )
    ).all()
    for other in running:
        if _abandoned(other, now, job_id):
            other.outcome = "failed"
            other.finished_at = now
            other.errors = 1
            other.detail = {"error": "abandoned"}
    busy = [r.id for r in running if r.outcome == "running"]
    if busy:
        raise SyncBusy(f"Sync run {busy[0]} of {connection!r} is still running")
    run = SyncRun(
        connection=connection,
        stream=stream,
        job_id=job_id,
        started_at=now,
        outcome="running",
        # A run outside the job system (the CLI) says which process owns it, so a killed
        # `switchboard sync` does not hold the connection until STALE_AFTER.
        detail=None if job_id is not None else {"owner": _OWNER},
        pages=0,
        upserted=0,
        deleted=0,
        skipped=0,
        errors=0,
    )
    session.add(run)
    await session.flush()
    return run


async def finish_run(
    session: AsyncSession, run_id: int, result: SyncResult | None, *, error: str | None = None
) -> None:
    values: dict[str, Any] = {"finished_at": utcnow()}
    if error is None and result is not None:
        values.update(
            outcome="succeeded",
            pages=result.pages,
            upserted=result.upserted,
            deleted=result.deleted,
            skipped=result.skipped,
            errors=result.errors,
            detail=result.detail or None,
        )
    else:
        detail = dict(result.detail) if result is not None else {}
        detail["error"] = error
        values.update(
            outcome="failed",
            errors=(result.errors if result is not None else 0) + 1,
            skipped=result.skipped if result is not None else 0,
            detail=detail,
        )
    run = await session.scalar(
        update(SyncRun)
        .where(SyncRun.id == run_id)
        .values(**values)
        .returning(SyncRun)
        .execution_options(synchronize_session=False)
    )
    if run is not None:
        await changes.sync_finished(session, run_dict(run), run.connection)


async def execute(ctx: SyncContext) -> tuple[SyncRun, SyncResult | None, str | None]:
    """Run one sync of ``ctx.name`` and record it. Returns the run (as started), the result,
    and the error message when it failed.

    A failure of the provider or of its document (``AppError``, ``RetryLater``) is recorded
    and returned, not raised: the next scheduled run is the retry. Anything else is a bug: it
    is recorded and re-raised.
    """
    syncer = ctx.config.provider_of(ctx.connection).syncer
    assert syncer is not None, f"no syncer for {ctx.connection.kind}"
    async with ctx.db.session() as session:
        run = await begin_run(session, ctx.name, syncer.stream, job_id=ctx.job_id)
    started = time.perf_counter()
    result: SyncResult | None = None
    error: str | None = None
    try:
        result = await syncer.run(ctx)
    except (AppError, RetryLater) as exc:
        error = exc.message if isinstance(exc, AppError) else exc.reason
    except asyncio.CancelledError:
        # Shutdown past its grace: the job is handed back and runs again; this run is not a bug.
        async with ctx.db.session() as session:
            await finish_run(session, run.id, None, error="interrupted: the process stopped")
        metrics.RUNS.labels(ctx.name, "interrupted").inc()
        raise
    except BaseException as exc:
        async with ctx.db.session() as session:
            await finish_run(session, run.id, None, error=f"internal error: {type(exc).__name__}")
        metrics.RUNS.labels(ctx.name, "failed").inc()
        raise
    async with ctx.db.session() as session:
        await finish_run(session, run.id, result, error=error)
        await health.sync_finished(session, ctx.name, error)
    outcome = "failed" if error is not None else "succeeded"
    metrics.RUNS.labels(ctx.name, outcome).inc()
    metrics.DURATION.labels(ctx.name).observe(time.perf_counter() - started)
    if error is None:
        metrics.LAST_SUCCESS.labels(ctx.name).set(time.time())
    log.info(
        "sync_run",
        connection=ctx.name,
        run=run.id,
        outcome=outcome,
        error=error,
        upserted=result.upserted if result else 0,
        skipped=result.skipped if result else 0,
    )
    return run, result, error


async def enqueue_sync(session: AsyncSession, name: str, *, full: bool = False) -> int:
    """Queue a sync of ``name`` (coalesced with one already pending); returns the job id.

    A pending full sync stays full: coalescing takes the newest payload, and a plain request
    (the schedule's next slot, while a long run holds the key) must not undo the full one."""
    key = job_key(name)
    if not full:
        pending = await pending_payloads(session, JOB_KIND, [key])
        full = bool(pending.get(key, {}).get("full", False))
    return await enqueue(
        session,
        JOB_KIND,
        {"connection": name, "full": full},
        key=key,
        coalesce=True,
    )


async def list_runs(
    session: AsyncSession, connection: str, *, limit: int, before: int | None = None
) -> list[SyncRun]:
    """Runs of ``connection``, newest first; ``before`` is the id cursor of the next page."""
    query = select(SyncRun).where(SyncRun.connection == connection)
    if before is not None:
        query = query.where(SyncRun.id < before)
    return list((await session.scalars(query.order_by(SyncRun.id.desc()).limit(limit))).all())


def run_dict(run: SyncRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "connection": run.connection,
        "stream": run.stream,
        "outcome": run.outcome,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "pages": run.pages,
        "upserted": run.upserted,
        "deleted": run.deleted,
        "skipped": run.skipped,
        "errors": run.errors,
        "detail": run.detail,
    }


async def connection_summary(session: AsyncSession, config: Config, name: str) -> dict[str, Any]:
    """What ``GET /connections/{name}`` shows about syncing: the last run, the last success,
    failures since it, and the store's own counts (e.g. plans stored). Empty when the
    connection's kind does not sync."""
    conn = config.connection(name)
    syncer = config.provider_of(conn).syncer if conn is not None else None
    if syncer is None:
        return {}
    last = await session.scalar(
        select(SyncRun).where(SyncRun.connection == name).order_by(SyncRun.id.desc()).limit(1)
    )
    last_ok = await session.scalar(
        select(SyncRun)
        .where(SyncRun.connection == name, SyncRun.outcome == "succeeded")
        .order_by(SyncRun.id.desc())
        .limit(1)
    )
    failed_since = await session.scalar(
        select(func.count())
        .select_from(SyncRun)
        .where(
            and_(
                SyncRun.connection == name,
                SyncRun.outcome == "failed",
                SyncRun.id > (last_ok.id if last_ok is not None else 0),
            )
        )
    )
    summary: dict[str, Any] = {
        "last_run": run_dict(last) if last is not None else None,
        "last_success_at": last_ok.finished_at.isoformat()
        if last_ok is not None and last_ok.finished_at
        else None,
        "failed_runs_since_success": failed_since or 0,
        "skipped": last.skipped if last is not None else 0,
        "errors": last.errors if last is not None else 0,
    }
    if syncer.summary is not None:
        summary.update(await syncer.summary(session, name))
    return summary


def schedules(config: Config) -> list[ScheduleSpec]:
    """One schedule per connection whose kind syncs with an interval (and, by loading the
    syncers, the sync job handlers of this process).

    The first sync runs at start, not at the next slot, and again at once when the connection's
    settings change: the payload carries a fingerprint of them, and the schedule is immediate.
    """
    specs = []
    for name, conn in sorted(config.catalog.active().items()):  # a paused one is not scheduled
        syncer = config.provider_of(conn).syncer
        every = syncer.interval(conn) if syncer is not None else None
        if every is not None:
            specs.append(
                ScheduleSpec(
                    name=f"sync:{name}",
                    kind=TICK_KIND,
                    every=every,
                    payload={"connection": name, "settings": settings_fingerprint(conn)},
                    immediate=True,
                )
            )
    return specs


def settings_fingerprint(conn: Connection) -> str:
    """A short digest of a connection's settings (secrets are masked in the dump, so a rotated
    token alone does not trigger a resync)."""
    return hashlib.sha256(conn.model_dump_json().encode()).hexdigest()[:16]


async def run_now(
    config: Config,
    db: Database,
    outbound: Outbound,
    name: str,
    *,
    full: bool = False,
    progress: Any = None,
) -> tuple[SyncRun, SyncResult | None, str | None]:
    """Run a sync in this task (the CLI), outside the job queue."""
    resolve(config, name, to_run=True)
    conn = config.connection(name)
    assert conn is not None
    ctx = SyncContext(
        name=name,
        connection=conn,
        config=config,
        db=db,
        outbound=outbound,
        full=full,
        in_job=False,
    )
    if progress is not None:
        ctx.progress = progress
    return await execute(ctx)
