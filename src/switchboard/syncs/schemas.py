from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class SyncQueued(BaseModel):
    connection: str
    kind: str = Field(description="The connection's kind.")
    job_id: int = Field(description="The queued sync job (see /admin/jobs); one per connection.")
    full: bool


class SyncRunOut(BaseModel):
    id: int
    connection: str
    stream: str
    outcome: str = Field(description="running, succeeded or failed")
    started_at: datetime
    finished_at: datetime | None
    pages: int
    upserted: int
    deleted: int
    skipped: int
    errors: int
    detail: dict[str, Any] | None


class SyncRunList(BaseModel):
    items: list[SyncRunOut]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page."
    )
