from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from switchboard.connectors.fields import FIELDS
from switchboard.models import Contact

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


class ContactOut(BaseModel):
    id: str = Field(description="The hub's stable id of the contact.")
    connection: str
    externalId: str = Field(description="The contact's id in its CRM.")
    email: str | None
    firstName: str | None
    lastName: str | None
    name: str | None = Field(description="First and last name, trimmed.")
    phone: str | None
    company: str | None
    createdAt: datetime | None
    updatedAt: datetime | None = Field(description="The CRM's last modification.")
    deletedAt: datetime | None = Field(description="Set when the contact was deleted.")
    fields: dict[str, str | None] = Field(
        default_factory=dict,
        description="The connection's custom fields (`custom_fields`), each configured name "
        "present, null when empty.",
    )
    raw: dict[str, Any] | None = Field(
        None, description="The CRM's record as received (only with `raw=true`)."
    )

    @classmethod
    def of(cls, contact: Contact, *, raw: bool = False, custom: Iterable[str] = ()) -> ContactOut:
        """``custom``: the names of the contact's connection's custom fields."""
        stored = contact.fields or {}
        return cls(
            id=contact.id,
            connection=contact.connection,
            externalId=contact.external_id,
            email=contact.email,
            firstName=contact.first_name,
            lastName=contact.last_name,
            name=contact.name,
            phone=contact.phone,
            company=contact.company,
            createdAt=contact.created_at,
            updatedAt=contact.updated_at,
            deletedAt=contact.deleted_at,
            fields={name: stored.get(name) for name in custom},
            # Only read when asked: the list query defers the column.
            raw=contact.raw if raw else None,
        )


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


CustomValue = Annotated[str | None, Field(max_length=65_536)]
CUSTOM_FIELDS_DESCRIPTION = (
    "Custom fields of the contact's connection (`custom_fields`) by name; `null` clears one. "
    "A name the connection does not configure is a 422 naming it."
)


class _Input(BaseModel):
    # An unknown field is a 422 naming it, never dropped or written under a wrong name.
    model_config = ConfigDict(extra="forbid")

    fields: dict[str, CustomValue] | None = Field(None, description=CUSTOM_FIELDS_DESCRIPTION)

    @field_validator("email", mode="after", check_fields=False)
    @classmethod
    def _valid_email(cls, value: str | None) -> str | None:
        return _email(value)

    @field_validator("fields", mode="after")
    @classmethod
    def _custom_only(cls, value: dict[str, str | None] | None) -> dict[str, str | None] | None:
        standard = sorted(set(value or {}) & set(FIELDS))
        if standard:
            raise ValueError(f"{', '.join(standard)}: a standard field, set at the top level")
        return value

    def crm_fields(self, *, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """The standard fields given (``exclude_unset``) and the custom ones, in one dict."""
        given = self.model_dump(exclude={"fields", *exclude}, exclude_unset=True)
        return {**given, **(self.fields or {})}


class ContactCreate(_Input):
    email: str = Field(max_length=320)
    firstName: str | None = Field(None, max_length=200)
    lastName: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=100)
    company: str | None = Field(None, max_length=200)
    connection: str | None = Field(
        None,
        description="The CRM to create it in (default: `[contacts] default_connection`); "
        "404 when no connection has this name.",
    )


class ContactReplace(_Input):
    """``PUT``: every field; an omitted optional field is cleared."""

    email: str = Field(max_length=320)
    firstName: str | None = Field(None, max_length=200)
    lastName: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=100)
    company: str | None = Field(None, max_length=200)


class ContactPatch(_Input):
    """``PATCH``: only the given fields; ``null`` clears one (not ``email``)."""

    email: str | None = Field(None, max_length=320)
    firstName: str | None = Field(None, max_length=200)
    lastName: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=100)
    company: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _email_not_cleared(self) -> ContactPatch:
        if "email" in self.model_fields_set and self.email is None:
            raise ValueError("email cannot be cleared")
        return self
