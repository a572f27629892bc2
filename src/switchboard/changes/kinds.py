"""The event kinds and how each is derived from the change that causes it.

Each function is called by the store layer of its feature, in the transaction of the change
(one line there): contacts from ``contacts.service.store``/``store_many`` (syncs, CRM webhooks
and the hub's own writes all pass there), users from the propagation's outcome writes, tasks
from the TODO webhook's state machine, plans from the feed's ingest, sync runs from
``syncs.service.finish_run``, reports from the report job's cursor advance.

Subjects (what per-object order is kept by): ``contact:<hub id>``, ``user:<id>``,
``task:<connection>:<task id>``, ``event_plan:<plan id>``, ``sync:<connection>``,
``report:tasks``, ``event_subscription:<id>``, ``connection:<id>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.changes.service import NewEvent, emit, emit_many
from switchboard.db import lock_keys
from switchboard.models import Contact, EventPlan

TYPES: dict[str, str] = {
    "contact.created": "A CRM contact appeared in the store (sync, CRM webhook or own write).",
    "contact.updated": "A stored contact's normalised fields changed (`changed` names them).",
    "contact.deleted": "A stored contact was deleted in its CRM or through the hub.",
    "user.sync.succeeded": "A user's latest state was written to the CRM.",
    "user.sync.failed": "The CRM refused a user's update (not retried).",
    "user.sync.dead": "A user's update kept failing until its retry window ended.",
    "task.created": "A TODO-app task was created.",
    "task.updated": "A task's content changed.",
    "task.completed": "A task was completed.",
    "task.deleted": "A task was deleted.",
    "report.created": "The scheduled report wrote a window's files.",
    "sync.succeeded": "A connection's sync run finished.",
    "sync.failed": "A connection's sync run failed.",
    "event_plan.created": "A plan appeared in an event feed.",
    "event_plan.updated": "A feed plan's content changed, or it came back to the feed.",
    "event_plan.removed": "A plan left its feed (its last values are kept).",
    "event_subscription.disabled": "A subscription was disabled (410, or failing for days).",
    "connection.created": "A connection was added (API, connect flow or connections file).",
    "connection.updated": "A connection's alias, end user, tags, settings, credentials or "
    "status changed (`changed` names them; `paused`/`ok` in `status`, and `error` after "
    "three failed syncs in a row, `ok` again after the next good one).",
    "connection.reauthorised": "An end user re-authorised a connection through a connect link.",
    "connection.needs_reauth": "The provider refused a connection's refresh token: it needs "
    "its end user to re-authorise it (a connect link with `connection`).",
    "connection.deleted": "A connection was deleted.",
}
"""Every event type and what it means (documented in the OpenAPI ``webhooks`` section)."""


async def connection_event(
    session: AsyncSession, type: str, row: Any, changed: Sequence[str] = ()
) -> None:
    """A connection's change (``row``: its ``connections`` row as the change leaves it)."""
    data = {
        "connection": {
            "id": row.id,
            "alias": row.alias,
            "kind": row.kind,
            "integration": row.integration,
            "account": row.account,
            "end_user": {
                "id": row.end_user_id,
                "email": row.end_user_email,
                "organisation": row.end_user_organisation,
            },
            "tags": list(row.tags or ()),
            "status": row.status,
            "status_reason": row.status_reason,
        },
        "changed": list(changed),
    }
    await emit(session, type, f"connection:{row.id}", data, connection=row.id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- contacts ---------------------------------------------------------------------------------

_FIELDS = {
    "email": "email",
    "first_name": "firstName",
    "last_name": "lastName",
    "name": "name",
    "phone": "phone",
    "company": "company",
}


def contact_json(values: dict[str, Any]) -> dict[str, Any]:
    """A contact as ``GET /contacts/{id}`` shows it (without ``raw``), from its row's values."""
    return {
        "id": values["id"],
        "connection": values["connection"],
        "externalId": values["external_id"],
        **{api: values.get(column) for column, api in _FIELDS.items()},
        "createdAt": _iso(values.get("created_at")),
        "updatedAt": _iso(values.get("updated_at")),
        "deletedAt": _iso(values.get("deleted_at")),
    }


async def contacts_stored(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Emit the events of an upsert of contact rows, before it runs, by the rule the upsert
    applies (content changed, not older). On PostgreSQL the contacts are locked first (advisory
    locks in sorted order, held to the commit; a row lock cannot cover a contact not stored
    yet), so what is read is what the upsert replaces: two transactions storing one new contact
    at once (a sync page and the API's own write) make one ``contact.created``, not two."""
    if not rows:
        return
    await lock_keys(session, (f"contact:{row['id']}" for row in rows))
    columns = [getattr(Contact, c) for c in ("id", *_FIELDS, "updated_at", "deleted_at")]
    before = {
        r.id: r
        for r in (
            await session.execute(
                select(*columns, Contact.content_hash)
                .where(Contact.id.in_([row["id"] for row in rows]))
                .order_by(Contact.id)
            )
        ).all()
    }
    events: list[NewEvent] = []
    for row in rows:
        old = before.get(row["id"])
        deleted = row["deleted_at"] is not None
        if old is None:
            if not deleted:
                events.append(_contact("contact.created", row, list(_FIELDS.values())))
            continue
        if old.content_hash == row["content_hash"] or (
            old.updated_at is not None and old.updated_at > row["updated_at"]
        ):
            continue  # the upsert leaves the row as it is
        was_deleted = old.deleted_at is not None
        if deleted:
            if not was_deleted:
                events.append(_contact("contact.deleted", row, []))
            continue
        changed = [api for column, api in _FIELDS.items() if getattr(old, column) != row[column]]
        if was_deleted:
            changed.append("deletedAt")
        if changed:
            events.append(_contact("contact.updated", row, changed))
    await emit_many(session, events)


def _contact(type: str, row: dict[str, Any], changed: list[str]) -> NewEvent:
    return NewEvent(
        type,
        f"contact:{row['id']}",
        {"contact": contact_json(row), "changed": changed},
        connection=row["connection"],
    )


# --- users ------------------------------------------------------------------------------------


def user_event(
    outcome: str,
    user_id: str,
    version: int,
    *,
    connection: str | None,
    crm_contact_id: str | None = None,
    error: str | None = None,
) -> NewEvent:
    return NewEvent(
        f"user.sync.{outcome}",
        f"user:{user_id}",
        {
            "user": {"id": user_id, "version": version},
            "crmConnection": connection,
            "crmContactId": crm_contact_id,
            "error": error,
        },
        connection=connection,
    )


async def user_sync_ended(
    session: AsyncSession,
    outcome: str,
    user_id: str,
    version: int,
    *,
    connection: str | None,
    error: str | None,
) -> None:
    """A propagation that ended without success: ``failed`` (refused) or ``dead``."""
    await emit_many(
        session, [user_event(outcome, user_id, version, connection=connection, error=error)]
    )


async def users_synced(
    session: AsyncSession, connection: str, synced: list[dict[str, Any]]
) -> None:
    """``synced``: the propagation's rows (``b_id``, ``b_version``, ``crm_contact_id``)."""
    await emit_many(
        session,
        (
            user_event(
                "succeeded",
                str(row["b_id"]),
                int(row["b_version"]),
                connection=connection,
                crm_contact_id=row.get("crm_contact_id"),
            )
            for row in synced
        ),
    )


# --- tasks ------------------------------------------------------------------------------------


async def task_changed(session: AsyncSession, outcome: str, task: dict[str, Any]) -> None:
    """``outcome``: the TODO state machine's (``created``, ``updated``, ``completed``,
    ``deleted``; anything else is no change); ``task``: the task as ``GET /tasks`` shows it."""
    if outcome in ("created", "updated", "completed", "deleted"):
        subject = f"task:{task['connection']}:{task['id']}"
        await emit(
            session, f"task.{outcome}", subject, {"task": task}, connection=task["connection"]
        )


# --- syncs and reports ------------------------------------------------------------------------


async def sync_finished(session: AsyncSession, run: dict[str, Any], connection: str) -> None:
    await emit(
        session,
        f"sync.{run['outcome']}",
        f"sync:{connection}",
        {"run": run},
        connection=connection,
    )


async def report_created(
    session: AsyncSession, start: str, end: str, users: int, directory: str
) -> None:
    await emit(
        session,
        "report.created",
        "report:tasks",
        {"windowStart": start, "windowEnd": end, "users": users, "directory": directory},
    )


# --- feed plans -------------------------------------------------------------------------------

_PAGE = 1000


def plan_json(plan: Any) -> dict[str, Any]:
    return {
        "id": plan.id,
        "connection": plan.connection,
        "basePlanId": plan.base_plan_id,
        "planId": plan.plan_id,
        "title": plan.title,
        "sellMode": plan.sell_mode,
        "startsAt": _iso(plan.starts_at),
        "endsAt": _iso(plan.ends_at),
        "soldOut": plan.sold_out,
        "minPrice": plan.min_price,
        "maxPrice": plan.max_price,
        "inFeed": plan.in_feed,
        "version": plan.version,
    }


_PLAN_COLUMNS = (
    EventPlan.id,
    EventPlan.connection,
    EventPlan.base_plan_id,
    EventPlan.plan_id,
    EventPlan.title,
    EventPlan.sell_mode,
    EventPlan.starts_at,
    EventPlan.ends_at,
    EventPlan.sold_out,
    EventPlan.min_price,
    EventPlan.max_price,
    EventPlan.in_feed,
    EventPlan.version,
    EventPlan.first_seen_at,
)


async def plans_written(
    session: AsyncSession, connection: str, version: int, now: datetime
) -> None:
    """The plans an ingest wrote (``version``): created when first seen now, else updated.
    Read and emitted a page at a time: memory does not grow with the feed."""
    after = ""
    while True:
        page = (
            await session.execute(
                select(*_PLAN_COLUMNS)
                .where(
                    EventPlan.connection == connection,
                    EventPlan.version == version,
                    EventPlan.id > after,
                )
                .order_by(EventPlan.id)
                .limit(_PAGE)
            )
        ).all()
        if not page:
            return
        await emit_many(
            session,
            (
                NewEvent(
                    "event_plan.created" if p.first_seen_at == now else "event_plan.updated",
                    f"event_plan:{p.id}",
                    {"plan": plan_json(p)},
                    connection=connection,
                )
                for p in page
            ),
        )
        after = page[-1].id


async def plans_removed(session: AsyncSession, connection: str, plans: Sequence[Any]) -> None:
    """``plans``: rows (``_PLAN_COLUMNS`` or more) of plans that just left the feed."""
    await emit_many(
        session,
        (
            NewEvent(
                "event_plan.removed",
                f"event_plan:{p.id}",
                {"plan": plan_json(p) | {"inFeed": False}},
                connection=connection,
            )
            for p in plans
        ),
    )


PLAN_RETURNING = _PLAN_COLUMNS
"""What the feed's "left the feed" update returns for :func:`plans_removed`."""
