from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from switchboard.parsing import parse_timestamp

TaskState = Literal["open", "completed", "deleted"]


class TodoMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userId: StrictStr = Field(min_length=1, max_length=200)
    id: StrictStr = Field(min_length=1, max_length=200)
    content: StrictStr
    isCompleted: StrictBool


class TodoEvent(BaseModel):
    """One TODO-app webhook (shared/providers/TODO_WEBHOOKS.md). ``event`` is any string here:
    an unknown event is a 400 by the provider's table, not a validation error."""

    model_config = ConfigDict(extra="ignore")

    event: StrictStr
    timestamp: datetime
    metadata: TodoMetadata

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> datetime:
        return parse_timestamp(value)


class TaskOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(description="The task id from the TODO app.")
    connection: str
    userId: str
    content: str
    state: TaskState
    createdAt: datetime
    completedAt: datetime | None
    deletedAt: datetime | None
    updatedAt: datetime


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")
