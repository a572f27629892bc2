from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from switchboard.changes.kinds import TYPES
from switchboard.changes.service import envelope
from switchboard.models import ChangeAttempt, ChangeEvent, EventSubscription


class ChangeOut(BaseModel):
    """An event as listed by ``GET /changes`` and delivered to subscriptions."""

    id: str = Field(description="Stable event id (`evt_…`); `webhook-id` starts with it.")
    seq: int = Field(description="Commit order: page with `after=<seq>`.")
    type: str
    subject: str = Field(description="The object the event is about (`contact:<id>`, ...).")
    connection: str | None
    timestamp: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, row: ChangeEvent) -> ChangeOut:
        return cls.model_validate(envelope(row))


class ChangePage(BaseModel):
    items: list[ChangeOut]
    next_after: int = Field(
        description="Pass as `after` for the next page (the last `seq` here, or `after` when "
        "the page is empty: poll again later with the same value)."
    )


def _check_types(value: list[str]) -> list[str]:
    for pattern in value:
        if pattern == "*":
            continue
        if pattern.endswith(".*"):
            prefix = pattern[:-1]
            if not any(t.startswith(prefix) for t in TYPES):
                raise ValueError(f"no event type matches {pattern!r}")
        elif pattern not in TYPES:
            raise ValueError(f"unknown event type {pattern!r}")
    return value


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="http(s) URL that receives the events.")
    event_types: list[str] = Field(
        min_length=1,
        max_length=50,
        description="Exact types or wildcards (`contact.*`, `*`).",
    )
    connection: str | None = Field(None, description="Only events of this connection.")
    description: str | None = Field(None, max_length=500)
    enabled: bool = True

    _types = field_validator("event_types")(_check_types)


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2000)
    event_types: list[str] | None = Field(None, min_length=1, max_length=50)
    connection: str | None = None
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None

    @field_validator("event_types")
    @classmethod
    def _valid(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_types(value)


class SubscriptionOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    connection: str | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        None, description="The `whsec_…` signing secret: only in the answer that created it."
    )

    @classmethod
    def of(cls, sub: EventSubscription, *, secret: str | None = None) -> SubscriptionOut:
        return cls(
            id=sub.id,
            url=sub.url,
            event_types=list(sub.event_types),
            connection=sub.connection,
            description=sub.description,
            enabled=sub.enabled,
            disabled_reason=sub.disabled_reason,
            failing_since=sub.failing_since,
            created_at=sub.created_at,
            updated_at=sub.updated_at,
            secret=secret,
        )


class SubscriptionList(BaseModel):
    items: list[SubscriptionOut]


class SecretOut(BaseModel):
    secret: str = Field(description="The new `whsec_…` secret (shown once).")
    previous_valid_until: datetime = Field(
        description="Until then deliveries carry signatures by the old secret too."
    )


class RecoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="Re-send the events given up since then.")


class Queued(BaseModel):
    queued: int = Field(description="Deliveries queued.")


class AttemptOut(BaseModel):
    id: int
    event_id: str
    subscription_id: str
    attempt: int
    outcome: str
    status_code: int | None
    error: str | None
    response: str | None = Field(description="The first KiB of the receiver's answer.")
    latency_ms: float | None
    created_at: datetime

    @classmethod
    def of(cls, row: ChangeAttempt) -> AttemptOut:
        return cls(
            id=row.id,
            event_id=f"evt_{row.event_id}",
            subscription_id=row.subscription_id,
            attempt=row.attempt,
            outcome=row.outcome,
            status_code=row.status_code,
            error=row.error,
            response=row.response,
            latency_ms=row.latency_ms,
            created_at=row.created_at,
        )


class AttemptPage(BaseModel):
    items: list[AttemptOut]
    next_before: int | None = Field(None, description="Pass as `before` for older attempts.")
