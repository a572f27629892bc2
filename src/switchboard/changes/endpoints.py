"""``/changes`` (the change feed, resend) and ``/event-subscriptions`` (CRUD, secrets,
recovery, the attempt log)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from switchboard.changes import service
from switchboard.changes.crypto import secret_box
from switchboard.changes.schemas import (
    AttemptOut,
    AttemptPage,
    ChangeOut,
    ChangePage,
    Queued,
    RecoverIn,
    SecretOut,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionOut,
    SubscriptionPatch,
)
from switchboard.changes.urls import check
from switchboard.db import utcnow
from switchboard.deps import Authenticated, ConnectionFilter, CurrentConfig, DbSession
from switchboard.errors import NotFound, Unprocessable
from switchboard.jobs import queue
from switchboard.models import ChangeAttempt, EventSubscription
from switchboard.openapi import ERRORS
from switchboard.parsing import MAX_ROW_ID

router = APIRouter(tags=["changes"], dependencies=Authenticated)


@router.get("/changes", response_model=ChangePage, responses=ERRORS(401, 404, 422))
async def list_changes(
    session: DbSession,
    after: Annotated[
        int, Query(ge=0, le=MAX_ROW_ID, description="The `seq` of the last event seen.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[
        list[str] | None, Query(description="Event types (repeatable; `contact.*` matches).")
    ] = None,
    subject: Annotated[str | None, Query(max_length=300)] = None,
    connection: ConnectionFilter = None,
) -> ChangePage:
    """Events in the order the hub committed them. Page with ``after=next_after``: every change
    is seen exactly once, including one whose transaction committed late."""
    rows = await service.list_events(
        session,
        after=after,
        limit=limit,
        types=type or (),
        subject=subject,
        connection=connection,
    )
    return ChangePage(
        items=[ChangeOut.of(r) for r in rows], next_after=rows[-1].seq if rows else after
    )


def _event_id(value: str) -> int:
    parsed = service.parse_public_id(value)
    if parsed is None:
        raise NotFound(f"No event {value!r}")
    return parsed


@router.get("/changes/{event_id}", response_model=ChangeOut, responses=ERRORS(401, 404))
async def get_change(event_id: str, session: DbSession) -> ChangeOut:
    row = await service.get_event(session, _event_id(event_id))
    if row is None:
        raise NotFound(f"No event {event_id!r}")
    return ChangeOut.of(row)


@router.post(
    "/changes/{event_id}/resend",
    status_code=202,
    response_model=Queued,
    responses=ERRORS(401, 404, 422),
)
async def resend_change(
    event_id: str,
    session: DbSession,
    config: CurrentConfig,
    subscription: Annotated[
        str | None, Query(description="Only to this subscription (default: every match).")
    ] = None,
) -> Queued:
    """Deliver the event again (same ``webhook-id``) to the enabled subscriptions it matches."""
    row = await service.get_event(session, _event_id(event_id))
    if row is None:
        raise NotFound(f"No event {event_id!r}")
    subs = [s for s in await service.list_subscriptions(session) if s.enabled]
    if subscription is not None:
        subs = [s for s in subs if s.id == subscription]
        if not subs:
            raise NotFound(f"No enabled subscription {subscription!r}")
    else:
        subs = [
            s
            for s in subs
            if service.matches(s.event_types, row.type)
            and (s.connection is None or s.connection == row.connection)
        ]
    attempts = len(config.settings.events_retry_schedule)
    jobs = [service.delivery_job(s, row.id, row.subject, attempts=attempts) for s in subs]
    await queue.enqueue_many(session, jobs)
    return Queued(queued=len(jobs))


# --- subscriptions ----------------------------------------------------------------------------

subs_router = APIRouter(prefix="/event-subscriptions", tags=["changes"], dependencies=Authenticated)


async def _found(session: DbSession, sub_id: str) -> EventSubscription:
    sub = await service.get_subscription(session, sub_id)
    if sub is None:
        raise NotFound(f"No event subscription {sub_id!r}")
    return sub


def _check_connection(config: CurrentConfig, name: str | None) -> str | None:
    """The id of the connection a subscription filters on (given by id or alias)."""
    if name is None:
        return None
    entry = config.entry(name)
    if entry is None:
        raise Unprocessable(f"No connection named {name!r}")
    return entry.id


@subs_router.post("", status_code=201, response_model=SubscriptionOut, responses=ERRORS(401, 422))
async def create_subscription(
    body: SubscriptionCreate, session: DbSession, config: CurrentConfig
) -> SubscriptionOut:
    """Subscribe a URL to event types. The answer holds the signing secret, once."""
    await check(config, body.url)
    connection = _check_connection(config, body.connection)
    secret = service.new_secret()
    now = utcnow()
    sub = EventSubscription(
        id=service.new_subscription_id(),
        url=body.url,
        event_types=body.event_types,
        connection=connection,
        description=body.description,
        enabled=body.enabled,
        secret=secret_box(config).encrypt(secret),
        after_seq=await service.lock_sequence(session),
        created_at=now,
        updated_at=now,
    )
    session.add(sub)
    await session.flush()
    return SubscriptionOut.of(sub, secret=secret)


@subs_router.get("", response_model=SubscriptionList, responses=ERRORS(401))
async def list_subscriptions(session: DbSession) -> SubscriptionList:
    return SubscriptionList(
        items=[SubscriptionOut.of(s) for s in await service.list_subscriptions(session)]
    )


@subs_router.get("/{sub_id}", response_model=SubscriptionOut, responses=ERRORS(401, 404))
async def get_subscription(sub_id: str, session: DbSession) -> SubscriptionOut:
    return SubscriptionOut.of(await _found(session, sub_id))


@subs_router.patch("/{sub_id}", response_model=SubscriptionOut, responses=ERRORS(401, 404, 422))
async def update_subscription(
    sub_id: str, body: SubscriptionPatch, session: DbSession, config: CurrentConfig
) -> SubscriptionOut:
    """Change some fields. Enabling a disabled subscription clears why it was disabled; what
    was given up can be re-sent with ``recover``, and events committed while it was disabled
    were not queued for it (``GET /changes`` has them)."""
    sub = await _found(session, sub_id)
    given = body.model_fields_set
    if "url" in given and body.url is not None:
        await check(config, body.url)
        sub.url = body.url
    if "event_types" in given and body.event_types is not None:
        sub.event_types = body.event_types
    if "connection" in given:
        sub.connection = _check_connection(config, body.connection)
    if "description" in given:
        sub.description = body.description
    if "enabled" in given and body.enabled is not None:
        if body.enabled and not sub.enabled:
            sub.disabled_reason = None
            sub.failing_since = None
        sub.enabled = body.enabled
    sub.updated_at = utcnow()
    await session.flush()
    return SubscriptionOut.of(sub)


@subs_router.delete("/{sub_id}", status_code=204, responses=ERRORS(401, 404))
async def delete_subscription(sub_id: str, session: DbSession) -> Response:
    """Delete the subscription; its queued deliveries are dropped when they run."""
    await service.delete_subscription(session, await _found(session, sub_id))
    return Response(status_code=204)


@subs_router.post("/{sub_id}/rotate-secret", response_model=SecretOut, responses=ERRORS(401, 404))
async def rotate_secret(sub_id: str, session: DbSession, config: CurrentConfig) -> SecretOut:
    """A new signing secret; the old one keeps signing too (a second signature in
    ``webhook-signature``) for ``SWITCHBOARD_EVENTS_SECRET_OVERLAP`` (24 h)."""
    sub = await _found(session, sub_id)
    secret = service.new_secret()
    now = utcnow()
    until = now + config.settings.events_secret_overlap
    sub.previous_secret, sub.previous_until = sub.secret, until
    sub.secret = secret_box(config).encrypt(secret)
    sub.updated_at = now
    await session.flush()
    return SecretOut(secret=secret, previous_valid_until=until)


@subs_router.post(
    "/{sub_id}/recover",
    status_code=202,
    response_model=Queued,
    responses=ERRORS(401, 404, 422),
)
async def recover(
    sub_id: str, body: RecoverIn, session: DbSession, config: CurrentConfig
) -> Queued:
    """Re-send every event given up for this subscription since ``since`` (and not delivered
    since), in event order."""
    sub = await _found(session, sub_id)
    if not sub.enabled:
        raise Unprocessable("The subscription is disabled: enable it first")
    failed = await service.failed_since(session, sub.id, body.since)
    attempts = len(config.settings.events_retry_schedule)
    await queue.enqueue_many(
        session,
        [
            service.delivery_job(sub, event_id, subject, attempts=attempts)
            for event_id, subject in failed
        ],
    )
    return Queued(queued=len(failed))


@subs_router.get("/{sub_id}/attempts", response_model=AttemptPage, responses=ERRORS(401, 404, 422))
async def list_attempts(
    sub_id: str,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    outcome: Annotated[str | None, Query(pattern="^(succeeded|retry|failed)$")] = None,
) -> AttemptPage:
    """The subscription's delivery attempts, newest first."""
    await _found(session, sub_id)
    query = select(ChangeAttempt).where(ChangeAttempt.subscription_id == sub_id)
    if before is not None:
        query = query.where(ChangeAttempt.id < before)
    if outcome is not None:
        query = query.where(ChangeAttempt.outcome == outcome)
    rows = list(
        (await session.scalars(query.order_by(ChangeAttempt.id.desc()).limit(limit + 1))).all()
    )
    page = rows[:limit]
    return AttemptPage(
        items=[AttemptOut.of(r) for r in page],
        next_before=page[-1].id if len(rows) > limit else None,
    )
