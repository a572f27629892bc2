from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

SyncState = Literal["pending", "synced", "failed", "dead"]


class UserPatch(BaseModel):
    """``firstName``/``lastName`` left out keep their value; ``null`` clears it. ``fields``:
    custom fields by name, each left out keeping its value, ``null`` clearing it."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    firstName: str | None = Field(None, max_length=200)
    lastName: str | None = Field(None, max_length=200)
    fields: dict[str, Annotated[str | None, Field(max_length=65_536)]] | None = Field(
        None,
        description="Custom fields of the CRM connection (`[users] crm_connection`'s "
        "`custom_fields`), propagated to its contact; a name it does not configure is a 422.",
    )

    crmConnection: str | None = Field(
        None,
        max_length=100,
        description="The CRM connection (id or alias) this user's contact lives in; left out "
        "keeps it, null returns to `[users] crm_connection`.",
    )

    def unknown_fields(self, known: Iterable[str]) -> list[str]:
        """The names in ``fields`` that are not in ``known``."""
        return sorted(set(self.fields or {}) - set(known))


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
    fields: dict[str, str] = Field(description="The user's custom field values (set ones only).")
    createdAt: datetime
    updatedAt: datetime
    sync: SyncOut
    crmConnection: str | None = Field(None, description="The CRM connection's id.")


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class UserItem(UserPatch):
    """One user of ``POST /users/batch``."""

    id: str = Field(min_length=1, max_length=200)


class UserBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Any] = Field(
        max_length=1000,
        description="Up to 1,000 `{id, email, firstName?, lastName?, fields?}`; each is "
        "validated on its own.",
    )


class ItemError(BaseModel):
    index: int = Field(description="Position of the item in `items`.")
    id: str | None
    detail: list[dict[str, Any]] = Field(description="What is wrong, as in a 422 answer.")


class UserBatchOut(BaseModel):
    items: list[UserOut] = Field(description="The users saved, in the order sent.")
    errors: list[ItemError] = Field(description="The items refused (none saved for them).")
