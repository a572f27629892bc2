"""Pure mapping between HubSpot's contact records and ours (``shared/providers/HUBSPOT.md``).

``custom`` is the connection's ``custom_fields`` (ours → a HubSpot property): those properties
map like the standard ones (requested by every read, written as properties, ``""`` is empty).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from switchboard.connectors.crm import CrmContact, Fields, UnknownField, malformed

TO_HUBSPOT = {
    "email": "email",
    "firstName": "firstname",
    "lastName": "lastname",
    "phone": "phone",
    "company": "company",
}
FROM_HUBSPOT = {vendor: ours for ours, vendor in TO_HUBSPOT.items()}

_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


def to_properties(
    fields: Fields, connection: str, custom: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Our fields as HubSpot properties. HubSpot clears a property set to ``""``, so ``None``
    (our "empty") becomes ``""``; an email is sent lower-cased, as HubSpot stores it."""
    properties: dict[str, str] = {}
    for name, value in fields.items():
        vendor = TO_HUBSPOT.get(name) or (custom or {}).get(name)
        if vendor is None:
            raise UnknownField(name, connection)
        text = "" if value is None else value
        properties[vendor] = text.strip().lower() if vendor == "email" else text
    return properties


def parse_time(value: Any) -> datetime | None:
    """HubSpot's ISO 8601 times (``2024-01-01T00:00:00.000Z``); ``None`` when absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def from_record(
    record: Any, connection: str, custom: Mapping[str, str] | None = None
) -> CrmContact:
    """A HubSpot object (list, get, search, create or update answer) as a :class:`CrmContact`.

    Only the properties present in the record appear in ``fields`` (a PATCH answer carries the
    written ones only); an empty string is ``None``."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), str | int):
        raise malformed(connection, "a contact without an id", record)
    properties = record.get("properties") or {}
    if not isinstance(properties, dict):
        raise malformed(connection, "a contact whose properties are not an object", record)
    fields: Fields = {}
    pairs = [*FROM_HUBSPOT.items(), *((v, o) for o, v in (custom or {}).items())]
    for vendor, ours in pairs:
        if vendor in properties:
            value = properties[vendor]
            fields[ours] = str(value) if value not in (None, "") else None
    return CrmContact(
        external_id=str(record["id"]),
        fields=fields,
        created_at=parse_time(record.get("createdAt") or properties.get("createdate")),
        updated_at=parse_time(
            record.get("archivedAt")
            or record.get("updatedAt")
            or properties.get("lastmodifieddate")
        ),
        archived=bool(record.get("archived", False)),
        raw=record,
    )


def existing_id(message: str | None) -> str | None:
    """The id in HubSpot's 409 message ``Contact already exists. Existing ID: 37765128953``."""
    match = _EXISTING_ID.search(message or "")
    return match.group(1) if match else None
