from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobState = Literal["pending", "running", "succeeded", "dead"]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    key: str | None
    state: JobState
    payload: dict[str, Any]
    attempts: int
    max_attempts: int | None = Field(description="None: the default, or until the deadline.")
    run_at: datetime = Field(description="When it is (or was) due.")
    deadline: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_until: datetime | None
    worker: str | None
    last_error: str | None
    batch: int | None = Field(
        description="The batch of its latest run (the id of the batch's first job); None when "
        "it ran alone."
    )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")
