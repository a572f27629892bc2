"""The events the hub sends, as the OpenAPI document's ``webhooks`` section: one operation per
event type, with the body's schema. Every delivery carries the Standard Webhooks headers
``webhook-id`` (``<event id>_<subscription id>``, the same on every retry), ``webhook-timestamp``
and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``); answer 2xx
within 15 s, 410 to unsubscribe."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, create_model

from switchboard.changes.kinds import TYPES


class ContactData(BaseModel):
    contact: dict[str, Any] = Field(
        description="The contact as `GET /contacts/{id}` shows it (without `raw`)."
    )
    changed: list[str] = Field(description="The fields that changed (`email`, `firstName`, ...).")


class UserSyncData(BaseModel):
    user: dict[str, Any] = Field(description="`id` and the `version` the outcome is about.")
    crmConnection: str | None
    crmContactId: str | None
    error: str | None = Field(description="The CRM's refusal or the last error (failed, dead).")


class TaskData(BaseModel):
    task: dict[str, Any] = Field(description="The task as `GET /tasks/{id}` shows it.")


class ReportData(BaseModel):
    windowStart: str
    windowEnd: str
    users: int = Field(description="Users with a file in this window.")
    directory: str


class SyncData(BaseModel):
    run: dict[str, Any] = Field(description="The run as `GET /connections/{name}/runs` shows it.")


class PlanData(BaseModel):
    plan: dict[str, Any] = Field(description="The plan's id, titles, times, prices and version.")


class SubscriptionData(BaseModel):
    subscription: dict[str, Any] = Field(description="`id` and `url`.")
    reason: str


class ConnectionData(BaseModel):
    connection: dict[str, Any] = Field(
        description="`id`, `alias`, `kind`, `integration`, `account`, `end_user`, `tags`, "
        "`status`, `status_reason` (never its settings or credentials)."
    )
    changed: list[str] = Field(description="What changed (`connection.updated`).")


_DATA: dict[str, type[BaseModel]] = {
    "connection": ConnectionData,
    "contact": ContactData,
    "user": UserSyncData,
    "task": TaskData,
    "report": ReportData,
    "sync": SyncData,
    "event_plan": PlanData,
    "event_subscription": SubscriptionData,
}

router = APIRouter(tags=["change events"])


def _model(event_type: str) -> type[BaseModel]:
    data = _DATA[event_type.split(".", 1)[0]]
    name = "".join(part.title() for part in event_type.replace("_", ".").split(".")) + "Event"
    fields: dict[str, Any] = {
        "id": (str, Field(description="Stable event id (`evt_…`).")),
        "seq": (int, Field(description="Commit order (`GET /changes?after=`).")),
        "type": (str, Field(description=f"`{event_type}`")),
        "subject": (str, Field(description="The object the event is about.")),
        "connection": (str | None, None),
        "timestamp": (datetime, ...),
        "data": (data, ...),
    }
    model: type[BaseModel] = create_model(name, **fields)
    return model


def _document(event_type: str) -> None:
    model = _model(event_type)

    async def operation(body: Any) -> None:
        """Documentation only: the hub sends this, it does not serve it."""

    operation.__annotations__["body"] = model  # a real class, not the postponed annotation
    operation.__doc__ = TYPES[event_type]
    router.post(
        event_type,
        summary=event_type,
        operation_id=f"event_{event_type.replace('.', '_')}",
        status_code=200,
        response_description="Any 2xx within 15 s: received (410: unsubscribe).",
    )(operation)


for _type in TYPES:
    _document(_type)
