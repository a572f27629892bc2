"""Pure mapping between Pipedrive persons (API v1) and the hub's contact fields.

Ours ← Pipedrive: ``email``/``phone`` ← the primary item of the ``email``/``phone`` lists (an
item with an empty ``value`` is no value: Pipedrive lists ``[{"value": "", "primary": true}]``
for a person without one); ``firstName``/``lastName`` ← ``first_name``/``last_name``;
``company`` ← ``org_name`` (or the name inside an expanded ``org_id``); ``updated_at`` ←
``update_time`` (``YYYY-MM-DD HH:MM:SS``, UTC); ``archived`` ← ``active_flag`` false.

Ours → Pipedrive: API v1 writes one ``name`` (first and last name are read-only, derived by
Pipedrive), so ``firstName``/``lastName`` are joined into ``name`` (a change of one of them
needs the other's current value). A person needs a name: without first and last name, the
email stands in, and reads back as no name. ``email``/``phone`` replace the primary item of
their list and keep the others (so the current lists are needed); clearing one removes the
primary item. ``company`` is an organization in Pipedrive, not a text field: clearing it
detaches the person (``org_id: null``); setting it is refused (:class:`UnknownField`, 422)
rather than creating or guessing organizations.

Custom fields (``custom``: the connection's ``custom_fields``, ours → a person field key):
Pipedrive's custom person fields are top-level keys of the person named by a 40-character hash
(``"5ba4…e2f1": "gold"``), read and written as they are. A text, number or option id reads as
its text (``""`` and null are no value; an object-valued field, e.g. an address or a monetary
value, reads as no value); a write sends the text, ``None`` clearing the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from switchboard.connectors.crm import CrmContact, Fields, InvalidContact, UnknownField, malformed

WRITABLE = ("email", "firstName", "lastName", "phone", "company")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
LIST_LABEL = "work"


def parse_time(value: Any) -> datetime | None:
    """Pipedrive's ``YYYY-MM-DD HH:MM:SS`` (UTC); ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def _items(value: Any) -> list[dict[str, Any]]:
    """A person's ``email``/``phone`` list, its items with a non-empty string ``value``."""
    if isinstance(value, str):  # a bare string is accepted on writes; be as lenient on reads
        return [{"value": value, "primary": True}] if value else []
    if not isinstance(value, list):
        return []
    return [
        i for i in value if isinstance(i, dict) and isinstance(i.get("value"), str) and i["value"]
    ]


def primary(value: Any) -> str | None:
    """The primary item's value (the first item when none is marked primary)."""
    items = _items(value)
    for item in items:
        if item.get("primary") is True:
            return str(item["value"])
    return str(items[0]["value"]) if items else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def company_of(person: dict[str, Any]) -> str | None:
    org = person.get("org_id")
    return _text(person.get("org_name")) or (
        _text(org.get("name")) if isinstance(org, dict) else None
    )


def custom_value(value: Any) -> str | None:
    """A custom field's value as our text (see the module docstring)."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    return str(value) if isinstance(value, str | int | float) else None


def from_person(
    person: Any, connection: str, custom: Mapping[str, str] | None = None
) -> CrmContact:
    """A person (list, get, create, update answer, or a webhook's ``current``) as a contact."""
    if not isinstance(person, dict) or isinstance(person.get("id"), bool):
        raise malformed(connection, "a person without an id", person)
    if not isinstance(person.get("id"), int | str) or person["id"] in ("", None):
        raise malformed(connection, "a person without an id", person)
    email = primary(person.get("email"))
    first, last = _text(person.get("first_name")), _text(person.get("last_name"))
    name = _text(person.get("name"))
    if email is not None and name is not None and name.strip().lower() == email.lower():
        first = last = None  # the email standing in for a name (see the module docstring)
    fields: Fields = {
        "email": email.strip().lower() if email else None,
        "firstName": first,
        "lastName": last,
        "phone": primary(person.get("phone")),
        "company": company_of(person),
    }
    for ours, key in (custom or {}).items():
        if key in person:
            fields[ours] = custom_value(person[key])
    return CrmContact(
        external_id=str(person["id"]),
        fields=fields,
        created_at=parse_time(person.get("add_time")),
        updated_at=parse_time(person.get("update_time")),
        archived=person.get("active_flag") is False,
        raw=person,
    )


def check_writable(
    fields: Fields, connection: str, custom: Mapping[str, str] | None = None
) -> None:
    """:class:`UnknownField` for a field Pipedrive cannot take (see the module docstring)."""
    for name, value in fields.items():
        if name in (custom or {}):
            continue
        if name not in WRITABLE or (name == "company" and value is not None):
            raise UnknownField(name, connection)


def needs_current(fields: Fields) -> bool:
    """Whether :func:`to_person_body` needs the person as Pipedrive holds it for an update: a
    change of one name part (the other completes ``name``), of both to nothing (the email stands
    in), or of an email or phone (the other items of the list are kept)."""
    naming = {"firstName", "lastName"} & fields.keys()
    if {"email", "phone"} & fields.keys() or len(naming) == 1:
        return True
    return bool(naming) and compose_name(fields.get("firstName"), fields.get("lastName")) is None


def compose_name(first: str | None, last: str | None) -> str | None:
    name = " ".join(p.strip() for p in (first, last) if p and p.strip())
    return name or None


def _replace_primary(current: Any, value: str | None) -> list[dict[str, Any]]:
    items = [dict(i) for i in _items(current)]
    index = next((n for n, i in enumerate(items) if i.get("primary") is True), 0 if items else None)
    label = LIST_LABEL
    if index is not None:
        label = str(items[index].get("label") or LIST_LABEL)
        del items[index]
    for item in items:
        item["primary"] = False
    if value is not None:
        return [{"value": value, "primary": True, "label": label}, *items]
    if items:
        items[0]["primary"] = True  # as Pipedrive does when the primary item is removed
    return items


def to_person_body(
    fields: Fields,
    connection: str,
    current: dict[str, Any] | None = None,
    *,
    create: bool = False,
    custom: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The body of ``POST`` (``create``) or ``PUT /v1/persons/{id}`` that gives the person
    ``fields`` (``None`` clears one). ``current``: the person as Pipedrive holds it, for the
    updates :func:`needs_current` names. ``custom``: the custom fields (ours → person key)."""
    check_writable(fields, connection, custom)
    base = from_person(current, connection).fields if current is not None else {}
    body: dict[str, Any] = {
        key: fields[ours] for ours, key in (custom or {}).items() if ours in fields
    }
    email = fields.get("email", base.get("email"))
    email = email.strip().lower() if email else None
    if "email" in fields:
        body["email"] = _replace_primary((current or {}).get("email"), email)
    if "phone" in fields:
        body["phone"] = _replace_primary((current or {}).get("phone"), fields["phone"])
    if "company" in fields and not create:
        body["org_id"] = None
    naming = {"firstName", "lastName"} & fields.keys()
    stand_in = current is not None and base.get("firstName") is base.get("lastName") is None
    if create or naming or (stand_in and "email" in fields):
        first = fields.get("firstName", base.get("firstName"))
        last = fields.get("lastName", base.get("lastName"))
        name = compose_name(first, last) or email
        if name is None:
            raise InvalidContact(
                f"{connection} rejected the contact: a Pipedrive person needs a name or an email",
                connection=connection,
            )
        body["name"] = name
    return body
