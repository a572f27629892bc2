"""What the console's events page shows: per subscription, its state (why it was disabled),
attempt totals and an hourly success chart of the last 24 hours, and its latest attempts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.console import charts
from switchboard.db import utcnow
from switchboard.models import ChangeAttempt, ChangeEvent, EventSubscription

STACK = [("succeeded", "#2e7d32"), ("retry", "#f9a825"), ("failed", "#c62828")]
_CHART_ROWS = 20_000
"""Attempts read for one subscription's chart, newest first (bounds the page's cost)."""


@dataclass
class SubscriptionView:
    sub: EventSubscription
    totals: dict[str, int] = field(default_factory=dict)
    chart: Any = None
    attempts: list[tuple[ChangeAttempt, str | None]] = field(default_factory=list)


async def subscriptions(session: AsyncSession, *, recent: int = 25) -> list[SubscriptionView]:
    now = utcnow()
    since = now - timedelta(hours=24)
    views = []
    subs = await session.scalars(select(EventSubscription).order_by(EventSubscription.created_at))
    for sub in subs.all():
        view = SubscriptionView(sub)
        totals = await session.execute(
            select(ChangeAttempt.outcome, func.count())
            .where(ChangeAttempt.subscription_id == sub.id, ChangeAttempt.created_at >= since)
            .group_by(ChangeAttempt.outcome)
        )
        view.totals = {outcome: int(n) for outcome, n in totals.all()}
        rows = await session.execute(
            select(ChangeAttempt.created_at, ChangeAttempt.outcome)
            .where(ChangeAttempt.subscription_id == sub.id, ChangeAttempt.created_at >= since)
            .order_by(ChangeAttempt.id.desc())
            .limit(_CHART_ROWS)
        )
        hours: dict[int, dict[str, int]] = {h: {} for h in range(24)}
        for created_at, outcome in rows.all():
            age = int((now - created_at).total_seconds() // 3600)
            bucket = hours.setdefault(23 - min(age, 23), {})
            bucket[outcome] = bucket.get(outcome, 0) + 1
        view.chart = charts.stacked_bars(
            [(f"-{23 - h}h", hours[h]) for h in range(24)], STACK, height=180
        )
        latest = await session.execute(
            select(ChangeAttempt, ChangeEvent.type)
            .outerjoin(ChangeEvent, ChangeEvent.id == ChangeAttempt.event_id)
            .where(ChangeAttempt.subscription_id == sub.id)
            .order_by(ChangeAttempt.id.desc())
            .limit(recent)
        )
        view.attempts = [(a, t) for a, t in latest.all()]
        views.append(view)
    return views
