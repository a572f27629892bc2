"""One delivery attempt of one event to one subscription, and what its outcome records.

Like Svix: ``POST`` the event's JSON with Standard Webhooks headers; any 2xx within
``SWITCHBOARD_EVENTS_TIMEOUT`` (15 s) is a success. Anything else is retried on
``SWITCHBOARD_EVENTS_RETRY_SCHEDULE`` (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h),
waiting a 429's or 503's ``Retry-After`` instead of the schedule's step when it gives one; after
the last attempt the event is given up (``failed`` in the attempt log, ``recover`` re-sends it).
410 Gone disables the subscription at once; failing without a success for
``SWITCHBOARD_EVENTS_DISABLE_AFTER`` (5 days) disables it too. Both emit
``event_subscription.disabled`` and log a warning; the console shows the reason.

The POST goes to the address the SSRF check passed just before it (``urls.target``: resolved
once, so a name re-pointed in between is not followed), over the worker's kept-alive
connections (``client.Pool``); the timeout bounds connect, write and read in all.

``webhook-id`` is ``<event id>_<subscription id>``: the same for every attempt, a redelivery
after a worker died and a resend, so a receiver can deduplicate on it. What an attempt
recorded (the attempt log, the subscription's failure clock, a disable) commits with the job's
outcome (``JobContext.on_outcome``): no attempt is logged for a job whose outcome was lost.
The attempt rows of every job one transaction records go in at its commit, in one statement.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import httpx
import structlog
from sqlalchemy import event, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_session
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_

from switchboard.changes import metrics, signing
from switchboard.changes.client import Pool, ProtocolError, Target
from switchboard.changes.crypto import secret_box
from switchboard.changes.service import emit, envelope, public_id, signing_secrets
from switchboard.changes.urls import UnsafeUrl, target
from switchboard.config import Config
from switchboard.db import utcnow
from switchboard.errors import TerminalError, TransientError
from switchboard.http import Outbound, retry_after
from switchboard.jobs.registry import JobContext, OutcomeWrite
from switchboard.models import ChangeAttempt, ChangeEvent, EventSubscription

log = structlog.get_logger("switchboard.changes")

RESPONSE_BYTES = 1024
"""How much of the receiver's answer the attempt log keeps."""
_ATTEMPTS = "switchboard.changes.attempts"


def message_id(event_id: int, subscription_id: str) -> str:
    return f"{public_id(event_id)}_{subscription_id}"


@dataclass
class Attempt:
    """What one POST gave."""

    status: int | None = None
    error: str | None = None
    response: str | None = None
    latency_ms: float | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def post(
    pool: Pool, target: Target, body: bytes, headers: dict[str, str], *, seconds: float
) -> Attempt:
    """One POST, within ``seconds`` in all (``SWITCHBOARD_EVENTS_TIMEOUT``)."""
    started = time.perf_counter()
    attempt = Attempt()
    try:
        async with asyncio.timeout(seconds):
            answer = await pool.post(target, headers, body, keep=RESPONSE_BYTES)
    except TimeoutError:
        attempt.error = "timed out"
    except (OSError, ProtocolError) as exc:
        attempt.error = f"{type(exc).__name__}: {exc}"[:500]
    else:
        attempt.status = answer.status
        attempt.response = answer.head.decode("utf-8", "replace")
        if answer.status in (429, 503):
            attempt.retry_after = retry_after(
                httpx.Response(answer.status, headers=answer.headers), time.time()
            )
    attempt.latency_ms = (time.perf_counter() - started) * 1000
    return attempt


CONNECTIONS = 8
"""POSTs in flight to one subscription from one worker: a slow receiver holds up its own
deliveries only."""


class Deliverer:
    """A worker's connections (one pool, kept-alive per origin and address) and the gate of
    each subscription, which bounds its POSTs in flight."""

    def __init__(self) -> None:
        self.pool = Pool()
        self._gates: dict[str, asyncio.Semaphore] = {}

    def gate(self, sub_id: str) -> asyncio.Semaphore:
        gate = self._gates.get(sub_id)
        if gate is None:
            gate = self._gates[sub_id] = asyncio.Semaphore(CONNECTIONS)
        return gate

    async def aclose(self) -> None:
        await self.pool.aclose()


def _deliverer(ctx: JobContext) -> Deliverer:
    outbound: Outbound | None = ctx.outbound
    assert outbound is not None, "deliveries run in a worker with outbound clients"
    return outbound.plain_client("changes", Deliverer)


BATCH = 200
"""Deliveries one worker claims together (one claim, concurrent POSTs; never two of one
(subscription, object): the queue's keys). Under a backlog each claim, read and outcome
transaction is shared by this many deliveries (50 cost ~10% more worker CPU per delivery);
a trickle is claimed as it comes, a batch never waits to fill."""
BATCHES = 4
"""Delivery batches one worker runs at once: at most ``BATCH * BATCHES`` deliveries under
way, and at most ``CONNECTIONS`` POSTs per subscription (a POST's timeout does not count its
wait for one: waiting in this process is not the receiver's failure)."""


async def deliver_batch(jobs: list[JobContext]) -> None:
    """The ``changes.deliver`` jobs of one claim (see the module docstring): the events and
    subscriptions read at once, each subscription's URL resolved and checked once, the POSTs
    sent concurrently, each job its own outcome."""
    ctx0 = jobs[0]
    event_ids = {int(ctx.payload["event"]) for ctx in jobs}
    sub_ids = {str(ctx.payload["subscription"]) for ctx in jobs}
    async with ctx0.db.read_session() as session:
        rows = await session.scalars(select(ChangeEvent).where(ChangeEvent.id.in_(event_ids)))
        events = {row.id: row for row in rows.all()}
        found = await session.scalars(
            select(EventSubscription).where(EventSubscription.id.in_(sub_ids))
        )
        subs = {sub.id: sub for sub in found.all()}
    keys = {sub.id: _keys(ctx0.config, sub) for sub in subs.values()}
    # The SSRF check of the batch's POSTs to one subscription, made just before them: the
    # address it passed is the one they connect to (urls.target).
    enabled = [sub for sub in subs.values() if sub.enabled]
    checked = await asyncio.gather(*(_target(ctx0.config, sub.url) for sub in enabled))
    targets = {sub.id: found for sub, found in zip(enabled, checked, strict=True)}
    bodies: dict[int, bytes] = {}

    async def one(ctx: JobContext) -> None:
        row = events.get(int(ctx.payload["event"]))
        sub = subs.get(str(ctx.payload["subscription"]))
        try:
            if row is None or sub is None:
                return  # pruned, or the subscription was deleted
            body = bodies.get(row.id)
            if body is None:
                body = bodies[row.id] = json.dumps(envelope(row), separators=(",", ":")).encode()
            await _deliver(ctx, row, sub, keys[sub.id], targets.get(sub.id), body)
        except Exception as exc:  # this job's failure only; the others go on
            ctx.fail(exc)

    await asyncio.gather(*(one(ctx) for ctx in jobs))


async def _target(config: Config, url: str) -> Target | UnsafeUrl:
    try:
        return await target(config, url)
    except UnsafeUrl as exc:
        return exc


def _keys(config: Config, sub: EventSubscription) -> list[str]:
    box = secret_box(config)
    return [box.decrypt(s) for s in signing_secrets(sub, utcnow())]


async def _deliver(
    ctx: JobContext,
    row: ChangeEvent,
    sub: EventSubscription,
    keys: list[str],
    where: Target | UnsafeUrl | None,
    body: bytes,
) -> None:
    """One delivery; raises to retry (``TransientError``) or give up (``TerminalError``)."""
    config = ctx.config
    if not sub.enabled or where is None:
        skipped = Attempt(error="not sent: the subscription is disabled")
        ctx.on_outcome(_record(ctx, skipped, given_up=True, count_failure=False))
        return
    if isinstance(where, UnsafeUrl):
        attempt = Attempt(error=where.message)
    else:
        headers = signing.headers(keys, message_id(row.id, sub.id), int(time.time()), body)
        deliverer = _deliverer(ctx)
        async with deliverer.gate(sub.id):
            attempt = await post(
                deliverer.pool, where, body, headers, seconds=config.settings.events_timeout
            )
    metrics.observe(sub.id, attempt)
    if attempt.ok:
        # Its failure clock is reset only when one runs (known from the read above: a success
        # of a healthy subscription writes nothing but its attempt).
        ctx.on_outcome(_record(ctx, attempt, was_failing=sub.failing_since is not None))
        return
    schedule = config.settings.events_retry_schedule
    described = attempt.error or f"answered {attempt.status}"
    if attempt.status == 410:
        ctx.on_outcome(_record(ctx, attempt, given_up=True, disable="the URL answered 410 Gone"))
        raise TerminalError(f"{sub.url} {described}")
    if ctx.attempt >= len(schedule):
        ctx.on_outcome(_record(ctx, attempt, given_up=True))
        raise TerminalError(f"{described}; given up after {ctx.attempt} attempt(s)")
    wait = attempt.retry_after if attempt.retry_after is not None else schedule[ctx.attempt]
    ctx.on_outcome(_record(ctx, attempt))
    raise TransientError(described, retry_after=wait)


def _record(
    ctx: JobContext,
    attempt: Attempt,
    *,
    given_up: bool = False,
    disable: str | None = None,
    count_failure: bool = True,
    was_failing: bool = True,
) -> OutcomeWrite:
    event_id, sub_id = int(ctx.payload["event"]), str(ctx.payload["subscription"])
    number = ctx.attempt
    disable_after = ctx.config.settings.events_disable_after

    async def write(session: AsyncSession, job_state: str | None) -> None:
        now = utcnow()
        if attempt.ok:
            outcome = "succeeded"
        elif given_up or job_state == "dead":
            outcome = "failed"
        else:
            outcome = "retry"
        # Not a statement per attempt: the rows of every job whose outcome this transaction
        # records go in at its commit, in one (_insert_attempts).
        session.info.setdefault(_ATTEMPTS, []).append(
            {
                "event_id": event_id,
                "subscription_id": sub_id,
                "attempt": number,
                "outcome": outcome,
                "status_code": attempt.status,
                "error": attempt.error,
                "response": attempt.response,
                "latency_ms": attempt.latency_ms,
                "created_at": now,
            }
        )
        if attempt.ok:
            if not was_failing:
                return
            await session.execute(
                update(EventSubscription)
                .where(EventSubscription.id == sub_id, EventSubscription.failing_since.is_not(None))
                .values(failing_since=None)
                .execution_options(synchronize_session=False)
            )
            return
        if not count_failure:
            return
        sub = (
            await session.scalars(
                select(EventSubscription).where(EventSubscription.id == sub_id).with_for_update()
            )
        ).one_or_none()
        if sub is None or not sub.enabled:
            return
        if sub.failing_since is None:
            sub.failing_since = now
        reason = disable
        if reason is None and now - sub.failing_since >= disable_after:
            reason = f"every delivery failed since {sub.failing_since.isoformat()}"
        if reason is not None:
            await disable_subscription(session, sub, reason)

    return write


@event.listens_for(Session, "before_commit")
def _insert_attempts(session: Session) -> None:
    rows = session.info.pop(_ATTEMPTS, None)
    if not rows:
        return
    proxy = async_session(session)
    assert proxy is not None, "attempts are recorded through an AsyncSession"
    # Runs inside the AsyncSession's commit (a greenlet), as service._sequence does.
    await_(proxy.execute(insert(ChangeAttempt), rows))


@event.listens_for(Session, "after_transaction_end")
def _forget_attempts(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_ATTEMPTS, None)


async def disable_subscription(session: AsyncSession, sub: EventSubscription, reason: str) -> None:
    sub.enabled = False
    sub.disabled_reason = reason
    sub.updated_at = utcnow()
    log.warning("event_subscription_disabled", subscription=sub.id, url=sub.url, reason=reason)
    await emit(
        session,
        "event_subscription.disabled",
        f"event_subscription:{sub.id}",
        {"subscription": {"id": sub.id, "url": sub.url}, "reason": reason},
    )
