"""The composition root: which routers, job handlers, schedules, readiness checks and metric
refreshers the hub is made of. Each feature adds itself here, and nowhere else; the providers
are listed in :mod:`switchboard.providers`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter

from switchboard import metrics
from switchboard.changes import delivery as change_delivery
from switchboard.changes import service as change_service
from switchboard.changes import tasks as change_tasks
from switchboard.config import Config
from switchboard.contacts import tasks as contacts_tasks
from switchboard.db import Database
from switchboard.jobs import Registry, queue
from switchboard.jobs.runtime import Runtime
from switchboard.jobs.schedules import ScheduleSpec
from switchboard.reports import tasks as task_reports
from switchboard.syncs import registry as syncs_registry
from switchboard.syncs import service as syncs_service
from switchboard.syncs import tasks as syncs_tasks
from switchboard.tasks import service as tasks_service
from switchboard.users import tasks as users_tasks
from switchboard.users.service import JOB_KIND as USERS_JOB
from switchboard.webhooks import tasks as webhook_tasks

ReadinessCheck = Callable[[], Awaitable[tuple[Any, str | None]]]


def routers() -> list[APIRouter]:
    from switchboard.changes.endpoints import router as changes
    from switchboard.changes.endpoints import subs_router as event_subscriptions
    from switchboard.connections.endpoints import connect_router as connect
    from switchboard.connections.endpoints import integrations_router as integrations
    from switchboard.connections.endpoints import router as connections
    from switchboard.console.endpoints import router as console
    from switchboard.contacts.endpoints import router as contacts
    from switchboard.events.endpoints import router as events
    from switchboard.jobs.endpoints import router as jobs
    from switchboard.proxy.endpoints import router as proxy
    from switchboard.reports.endpoints import router as reports
    from switchboard.syncs.endpoints import router as syncs
    from switchboard.tasks.endpoints import router as tasks
    from switchboard.users.endpoints import router as users
    from switchboard.webhooks.endpoints import router as webhooks

    # The hottest routes first: routers are tried in order, and each one passed costs about
    # 5 us a request (measured on FastAPI 0.165). The proxy first: its overhead over a direct
    # call is a target of its own (bench/proxy.py; last, it paid ~90 us for the 14 before it),
    # and its routes match only paths under /proxy/. /search is answered before routing
    # (events.fastpath); then the write paths under load.
    hot = [proxy, events, users, webhooks, tasks, contacts, connections, syncs, jobs, reports]
    return [*hot, console, changes, event_subscriptions, integrations, connect]


def webhooks() -> list[APIRouter]:
    """What the hub sends: the OpenAPI document's ``webhooks`` section."""
    from switchboard.changes.docs import router as change_events

    return [change_events]


def schedules(config: Config) -> list[ScheduleSpec]:
    """Every periodic job this configuration asks for."""
    specs: list[ScheduleSpec] = [webhook_tasks.schedule()]  # bounds the delivery log
    specs.append(change_tasks.schedule())  # bounds the change events and attempt log
    if any(config.provider_of(c).task_events for c in config.connections.values()):
        specs.append(task_reports.schedule(config.hub.reports.interval))
    specs += syncs_service.schedules(config)  # one per connection that syncs on an interval
    return specs


def job_registry() -> Registry:
    """Every job kind the hub runs, and its handler."""
    jobs = Registry()
    jobs.add(syncs_registry.TICK_KIND, syncs_tasks.tick)
    jobs.add(syncs_registry.JOB_KIND, syncs_tasks.run)
    jobs.add_batch(
        contacts_tasks.EVENT_JOB,
        contacts_tasks.refresh,
        size=contacts_tasks.REFRESH_BATCH,
        concurrency=contacts_tasks.REFRESH_CONCURRENCY,
    )
    jobs.add_batch(
        USERS_JOB,
        users_tasks.propagate,
        size=users_tasks.BATCH,
        concurrency=users_tasks.concurrency,
    )
    jobs.add(webhook_tasks.PRUNE, webhook_tasks.prune)
    jobs.add(change_service.DISPATCH, change_tasks.dispatch)
    jobs.add_batch(
        change_service.DELIVER,
        change_delivery.deliver_batch,
        size=change_delivery.BATCH,
        concurrency=change_delivery.BATCHES,
    )
    jobs.add(change_tasks.PRUNE, change_tasks.prune)
    jobs.add(task_reports.KIND, task_reports.run_scheduled)
    return jobs


def build_runtime(config: Config, db: Database) -> Runtime:
    return Runtime(
        db, config, job_registry(), schedules(config), schedules_of=lambda: schedules(config)
    )


def readiness_checks(config: Config, db: Database) -> dict[str, ReadinessCheck]:
    from switchboard.http import readiness_check as outbound_readiness

    # Reported, never failing: see switchboard.http.readiness_check.
    return {"connections": outbound_readiness(db)}


def metrics_refreshers(config: Config, db: Database) -> list[Callable[[], Awaitable[None]]]:
    async def queue_depth() -> None:
        async with db.read_session() as session:
            rows = await queue.depth(session)
        metrics.JOBS.clear()
        for kind, state, count in rows:
            metrics.JOBS.labels(kind, state).set(count)

    async def task_states() -> None:
        async with db.read_session() as session:
            counts = await tasks_service.count_by_state(session)
        for state, count in counts.items():
            metrics.TASKS.labels(state).set(count)

    return [queue_depth, task_states]
