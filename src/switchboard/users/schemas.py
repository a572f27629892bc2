from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

SyncState = Literal["pending", "synced", "failed", "dead"]


class UserPatch(BaseModel):
    """``firstName``/``lastName`` left out keep their value; ``null`` clears it."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    firstName: str | None = Field(None, max_length=200)
    lastName: str | None = Field(None, max_length=200)


class SyncOut(BaseModel):
    state: SyncState
    attempts: int = Field(description="CRM attempts for the current change.")
    lastError: str | None
    syncedAt: datetime | None
    crmContactId: str | None


class UserOut(BaseModel):
    id: str
    email: str
    firstName: str | None
    lastName: str | None
    createdAt: datetime
    updatedAt: datetime
    sync: SyncOut


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")
