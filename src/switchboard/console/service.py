"""What the console's pages show: read-only queries over the other features' tables, and the
in-memory queue-depth history."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.config import Config, Connection
from switchboard.connections import connect
from switchboard.connections.catalog import Entry, IntegrationEntry, masked_settings
from switchboard.db import Database, utcnow
from switchboard.errors import Unprocessable
from switchboard.events import service as events_service
from switchboard.http import ConnectionStatus, Outbound
from switchboard.jobs import queue
from switchboard.jobs.schedules import align
from switchboard.models import Credential, Job, SyncRun, Task, User, WebhookDelivery
from switchboard.reports import service as reports_service
from switchboard.syncs import service as syncs_service
from switchboard.users.service import JOB_KIND as USERS_JOB_KIND
from switchboard.users.service import job_key as user_job_key

log = structlog.get_logger("switchboard.console")

SAMPLE_EVERY = 10.0
"""Seconds between two queue-depth samples."""
SAMPLES_KEPT = 360
"""Samples kept per process (an hour at :data:`SAMPLE_EVERY`)."""


# --- queue depth over time ----------------------------------------------------------------------


@dataclass(frozen=True)
class DepthSample:
    at: float
    """Unix time."""
    counts: dict[tuple[str, str], int]
    """``(kind, state) -> jobs``; succeeded jobs are history, not queue, and are left out."""


class DepthHistory:
    """``queue.depth`` sampled every :data:`SAMPLE_EVERY` seconds, kept in this process's memory.

    Each process samples the shared jobs table, so every process sees the same queue; the history
    starts when the process did (a restart forgets it; ``/metrics`` is the long-term record).
    """

    def __init__(self, every: float = SAMPLE_EVERY, keep: int = SAMPLES_KEPT) -> None:
        self.every = every
        self.samples: deque[DepthSample] = deque(maxlen=keep)
        self._stop = asyncio.Event()

    async def sample(self, db: Database) -> DepthSample:
        async with db.read_session() as session:
            rows = await queue.depth(session)
        taken = DepthSample(time.time(), {(kind, state): n for kind, state, n in rows})
        self.samples.append(taken)
        return taken

    async def run(self, db: Database) -> None:
        """Sample until :meth:`stop`. A query that fails (the database restarting) loses one
        sample, not the sampler."""
        while not self._stop.is_set():
            try:
                await self.sample(db)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("queue_depth_sample_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):  # the next sample is due
                await asyncio.wait_for(self._stop.wait(), timeout=self.every)

    def stop(self) -> None:
        self._stop.set()


# --- connections --------------------------------------------------------------------------------


def public_endpoint(conn: Connection) -> str | None:
    """The connection's base or feed URL without user info, query or fragment (any of them may
    carry a credential)."""
    url = getattr(conn, "base_url", None) or getattr(conn, "url", None)
    if not url:
        return None
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class ListedConnection:
    """One row of the connections list."""

    entry: Entry
    status: str
    """The catalog's status, ``needs_reauth`` when its stored OAuth2 token was refused."""
    reason: str | None
    last_run: SyncRun | None = None
    last_failure: SyncRun | None = None

    @property
    def tone(self) -> str:
        return STATUS_TONES.get(self.status, "idle")


STATUS_TONES = {"ok": "good", "needs_reauth": "bad", "paused": "warn", "error": "bad"}


async def refused_credentials(session: AsyncSession) -> dict[str, str | None]:
    """The connections whose stored OAuth2 token the provider refused, with its reason (one
    query: the list cannot ask every connection's outbound client)."""
    rows = await session.execute(
        select(Credential.connection, Credential.reauth_reason).where(Credential.needs_reauth)
    )
    return {connection: reason for connection, reason in rows.all()}


def effective_status(entry: Entry, refused: dict[str, str | None]) -> tuple[str, str | None]:
    """``(status, reason)`` as the API's ``ConnectionOut`` derives it: an ``ok`` connection
    whose token was refused needs re-authorising."""
    if entry.status == "ok" and entry.id in refused:
        return "needs_reauth", refused[entry.id]
    return entry.status, entry.status_reason


def _matches(entry: Entry, q: str) -> bool:
    user = entry.end_user
    text = (entry.id, entry.alias, entry.account, user.id, user.email, user.organisation)
    return any(q in value.casefold() for value in text if value)


@dataclass
class ConnectionPage:
    rows: list[ListedConnection]
    matched: int
    """Connections that pass the filters (all pages)."""
    counts: dict[str, int]
    """Every connection by status (before filtering)."""
    integrations: list[str]
    """The integrations the filter offers (of the catalog, or named by a connection)."""


async def connection_page(
    session: AsyncSession,
    config: Config,
    *,
    status: str | None,
    integration: str | None,
    q: str | None,
    limit: int,
    offset: int,
) -> ConnectionPage:
    """A page of the catalog's connections by alias, filtered in memory (the catalog is), and
    the last run and last failed run of the page's connections (two queries per page, whatever
    the catalog's size)."""
    refused = await refused_credentials(session)
    entries = config.catalog.entries()
    counts: dict[str, int] = {}
    matched = []
    folded = q.casefold() if q else None
    for entry in entries:
        state, reason = effective_status(entry, refused)
        counts[state] = counts.get(state, 0) + 1
        if (
            (status is None or state == status)
            and (integration is None or entry.integration == integration)
            and (folded is None or _matches(entry, folded))
        ):
            matched.append(ListedConnection(entry, state, reason))
    rows = matched[offset : offset + limit]
    ids = [r.entry.id for r in rows]
    last = await _latest_runs(session, ids)
    failed = await _latest_runs(session, ids, SyncRun.outcome == "failed")
    for row in rows:
        row.last_run, row.last_failure = last.get(row.entry.id), failed.get(row.entry.id)
    named = {e.integration for e in entries if e.integration is not None}
    return ConnectionPage(
        rows=rows,
        matched=len(matched),
        counts=counts,
        integrations=sorted(named | config.catalog.integrations.keys()),
    )


async def _latest_runs(
    session: AsyncSession, connections: list[str], *where: ColumnElement[bool]
) -> dict[str, SyncRun]:
    if not connections:
        return {}
    latest = (
        select(func.max(SyncRun.id))
        .where(SyncRun.connection.in_(connections), *where)
        .group_by(SyncRun.connection)
    )
    runs = await session.scalars(select(SyncRun).where(SyncRun.id.in_(latest)))
    return {run.connection: run for run in runs.all()}


def oauth_integrations(integrations: dict[str, IntegrationEntry]) -> list[str]:
    """The integrations a connect link can be made for (the API's own check, per integration)."""
    names = []
    for name in sorted(integrations):
        try:
            connect.oauth_integration(integrations, name)
        except Unprocessable:
            continue
        names.append(name)
    return names


@dataclass
class ConnectionView:
    """One connection's page: the catalog's entry and what this process sees of it."""

    entry: Entry
    status: str
    reason: str | None
    endpoint: str | None
    auth: str | None
    can_sync: bool
    receives_webhooks: bool
    can_reauthorise: bool
    settings: dict[str, Any]
    """Secrets masked by their models, URL passwords and query values by :func:`mask_urls`."""
    breaker: str | None = None
    consecutive_failures: int = 0
    budgets: dict[str, int | None] = field(default_factory=dict)
    credential_state: str | None = None
    credential_detail: str | None = None
    credential_expires_at: datetime | None = None
    sync: dict[str, Any] = field(default_factory=dict)
    runs: list[SyncRun] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    deliveries: list[WebhookDelivery] = field(default_factory=list)

    @property
    def last_run(self) -> SyncRun | None:
        return self.runs[0] if self.runs else None

    @property
    def tone(self) -> str:
        return STATUS_TONES.get(self.status, "idle")

    @property
    def health(self) -> tuple[str, str]:
        """A one-word summary of its calls and syncs and its tone (``good``, ``warn``,
        ``bad``, ``idle``)."""
        if self.breaker == "open":
            return "down", "bad"
        if self.credential_state == "error":
            return "credential error", "bad"
        last = self.last_run
        if last is not None and last.outcome == "running":
            return "syncing", "idle"
        if last is not None and last.outcome == "failed":
            return "failing", "warn"
        if self.breaker == "half_open":
            return "recovering", "warn"
        if self.can_sync and last is None:
            return "never synced", "idle"
        return "ok", "good"


JOB_STATES = ("pending", "running", "dead")


async def connection_view(
    session: AsyncSession,
    config: Config,
    outbound: Outbound | None,
    entry: Entry,
    *,
    runs: int,
    jobs: int,
    deliveries: int,
) -> ConnectionView:
    conn = entry.settings
    provider = config.provider_of(conn)
    status: ConnectionStatus | None = None
    if outbound is not None and provider.outbound:
        status = await outbound.status(entry.id)
    refused = await refused_credentials(session)
    state, reason = effective_status(entry, refused)
    creds = status.credentials if status is not None else None
    if state == "ok" and creds is not None and creds.state == "needs_reauth":
        state, reason = "needs_reauth", creds.detail  # this process saw it before the table
    view = ConnectionView(
        entry=entry,
        status=state,
        reason=reason,
        endpoint=public_endpoint(conn),
        auth=getattr(getattr(conn, "auth", None), "type", None),
        can_sync=provider.syncer is not None,
        receives_webhooks=provider.receiver is not None,
        can_reauthorise=entry.integration in oauth_integrations(config.catalog.integrations),
        settings=masked_settings(conn),
    )
    if status is not None:
        view.breaker = status.breaker
        view.consecutive_failures = status.consecutive_failures
        view.budgets = dict(status.budgets)
        if status.credentials is not None:
            view.credential_state = status.credentials.state
            view.credential_detail = status.credentials.detail
            view.credential_expires_at = status.credentials.expires_at
    if view.can_sync:
        view.sync = await syncs_service.connection_summary(session, config, entry.id)
        view.runs = await syncs_service.list_runs(session, entry.id, limit=runs)
    view.jobs = await connection_jobs(session, entry.id, limit=jobs)
    recent = await session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.connection == entry.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(deliveries)
    )
    view.deliveries = list(recent.all())
    return view


async def connection_jobs(session: AsyncSession, connection_id: str, *, limit: int) -> list[Job]:
    """The connection's queued, running and dead jobs (every job kind that acts for a
    connection names its id as ``payload["connection"]``, which the queue copies into the
    indexed ``jobs.connection``), newest first."""
    stmt = (
        select(Job)
        .where(Job.connection == connection_id, Job.state.in_(JOB_STATES))
        .order_by(Job.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


# --- jobs ---------------------------------------------------------------------------------------


async def recent_jobs(session: AsyncSession, *, limit: int) -> list[Job]:
    return list((await session.scalars(select(Job).order_by(Job.id.desc()).limit(limit))).all())


async def dead_jobs(session: AsyncSession, *, limit: int) -> list[Job]:
    stmt = select(Job).where(Job.state == "dead").order_by(Job.finished_at.desc(), Job.id.desc())
    return list((await session.scalars(stmt.limit(limit))).all())


# --- webhooks -----------------------------------------------------------------------------------


@dataclass
class DeliveryGroup:
    connection: str
    kind: str | None
    totals: dict[str, int]
    """Deliveries by outcome, all time."""
    failed: int
    deliveries: list[WebhookDelivery]


async def deliveries(
    session: AsyncSession, config: Config, *, per_connection: int
) -> list[DeliveryGroup]:
    """Recent deliveries of every connection that receives webhooks (or has received some),
    failures (4xx/5xx answers) first, then newest first."""
    totals: dict[str, dict[str, int]] = {}
    rows = await session.execute(
        select(WebhookDelivery.connection, WebhookDelivery.outcome, func.count()).group_by(
            WebhookDelivery.connection, WebhookDelivery.outcome
        )
    )
    for connection, outcome, count in rows.all():
        totals.setdefault(connection, {})[outcome] = int(count)
    names = {n for n, c in config.connections.items() if config.provider_of(c).receiver is not None}
    groups = []
    failed_first = case((WebhookDelivery.status_code >= 400, 0), else_=1)
    for name in sorted(names | totals.keys()):
        failed = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.connection == name, WebhookDelivery.status_code >= 400)
        )
        recent = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.connection == name)
            .order_by(failed_first, WebhookDelivery.id.desc())
            .limit(per_connection)
        )
        conn = config.connection(name)
        groups.append(
            DeliveryGroup(
                connection=name,
                kind=conn.kind if conn is not None else None,
                totals=dict(sorted(totals.get(name, {}).items())),
                failed=int(failed or 0),
                deliveries=list(recent.all()),
            )
        )
    return groups


# --- event feed ---------------------------------------------------------------------------------


@dataclass
class FeedView:
    name: str
    kind: str
    endpoint: str | None
    interval: timedelta
    summary: dict[str, Any]
    runs: list[SyncRun]
    skipped_run: SyncRun | None
    """The latest run that skipped plans (its detail names the reasons), if any."""


async def feeds(session: AsyncSession, config: Config, *, runs: int) -> list[FeedView]:
    views = []
    for name, conn in sorted(config.connections.items()):
        syncer = config.provider_of(conn).syncer
        every = syncer.interval(conn) if syncer is not None and syncer.stream == "events" else None
        if every is None:  # not an event feed
            continue
        summary = await syncs_service.connection_summary(session, config, name)
        summary.update(await events_service.summary(session, name))
        skipped_run = await session.scalar(
            select(SyncRun)
            .where(SyncRun.connection == name, SyncRun.skipped > 0)
            .order_by(SyncRun.id.desc())
            .limit(1)
        )
        views.append(
            FeedView(
                name=name,
                kind=conn.kind,
                endpoint=public_endpoint(conn),
                interval=every,
                summary=summary,
                runs=await syncs_service.list_runs(session, name, limit=runs),
                skipped_run=skipped_run,
            )
        )
    return views


# --- tasks and reports --------------------------------------------------------------------------


@dataclass(frozen=True)
class UserTaskCounts:
    user_id: str
    open: int
    completed: int
    deleted: int

    @property
    def total(self) -> int:
        return self.open + self.completed + self.deleted


async def task_counts(session: AsyncSession, *, q: str | None, limit: int) -> list[UserTaskCounts]:
    """Tasks per user by current state, busiest users first."""
    open_ = func.count().filter(Task.deleted_at.is_(None), Task.completed_at.is_(None))
    completed = func.count().filter(Task.deleted_at.is_(None), Task.completed_at.is_not(None))
    deleted = func.count().filter(Task.deleted_at.is_not(None))
    stmt = (
        select(Task.user_id, open_, completed, deleted)
        .group_by(Task.user_id)
        .order_by(func.count().desc(), Task.user_id)
        .limit(limit)
    )
    if q:
        stmt = stmt.where(Task.user_id.icontains(q, autoescape=True))
    rows = (await session.execute(stmt)).all()
    return [UserTaskCounts(u, int(o), int(c), int(d)) for u, o, c, d in rows]


async def latest_tasks(session: AsyncSession, *, user_id: str | None, limit: int) -> list[Task]:
    """The most recently changed tasks (of one user, or of everyone)."""
    stmt = select(Task).order_by(Task.updated_at.desc(), Task.pk.desc()).limit(limit)
    if user_id is not None:
        stmt = stmt.where(Task.user_id == user_id)
    return list((await session.scalars(stmt)).all())


@dataclass(frozen=True)
class ReportWindow:
    start: datetime
    end: datetime
    completed: int
    new: int
    old: int
    users: int


async def report_windows(
    session: AsyncSession,
    *,
    every: timedelta,
    count: int,
    user_id: str | None = None,
    now: datetime | None = None,
) -> list[ReportWindow]:
    """The last ``count`` report windows ``(start, end]`` (aligned like the scheduled reports,
    the last one ending at the current boundary), each summed over users exactly as
    ``reports.service.compute`` counts them."""
    end = align(now or utcnow(), every)
    windows = []
    for i in range(count, 0, -1):
        w_end = end - (i - 1) * every
        w_start = w_end - every
        reports = await reports_service.compute(session, w_start, w_end, user_id)
        windows.append(
            ReportWindow(
                start=w_start,
                end=w_end,
                completed=sum(len(r.completedTasks) for r in reports.values()),
                new=sum(len(r.newIncompleteTasks) for r in reports.values()),
                old=sum(len(r.oldIncompleteTasks) for r in reports.values()),
                users=len(reports),
            )
        )
    return windows


# --- users --------------------------------------------------------------------------------------


async def users(
    session: AsyncSession, *, q: str | None, sync_state: str | None, limit: int, offset: int
) -> list[User]:
    stmt = select(User).order_by(User.id).limit(limit).offset(offset)
    if q:
        stmt = stmt.where(
            or_(User.id.icontains(q, autoescape=True), User.email.icontains(q, autoescape=True))
        )
    if sync_state:
        stmt = stmt.where(User.sync_state == sync_state)
    return list((await session.scalars(stmt)).all())


async def user_sync_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(User.sync_state, func.count()).group_by(User.sync_state))
    return {state: int(n) for state, n in rows.all()}


async def user_history(session: AsyncSession, user_id: str, *, limit: int) -> list[Job]:
    """The user's propagation jobs, newest first (succeeded ones until the job retention)."""
    stmt = (
        select(Job)
        .where(Job.kind == USERS_JOB_KIND, Job.key == user_job_key(user_id))
        .order_by(Job.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())
