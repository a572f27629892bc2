"""The portal's contacts: the property catalogue, the store, and input validation."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from switchboard.connectors.hubspot.simulator.errors import (
    NOT_FOUND,
    HubSpotError,
    conflict,
    validation_error,
)

READ_ONLY = ("hs_object_id", "createdate", "lastmodifieddate")
WRITABLE = (
    "email",
    "firstname",
    "lastname",
    "phone",
    "mobilephone",
    "company",
    "website",
    "jobtitle",
    "address",
    "city",
    "state",
    "zip",
    "country",
    "lifecyclestage",
    "hs_lead_status",
)
KNOWN = (*WRITABLE, *READ_ONLY)
DEFAULT_PROPERTIES = ("firstname", "lastname", "email")
# HubSpot refuses an address whose top-level domain is not a real one; a TLD is letters (or an
# IDN's punycode), never digits: ``bad@example.c0m`` passes a syntax check and fails here.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.(?:[^\W\d_]{2,63}|xn--[a-z0-9-]+)$")


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    """HubSpot's timestamp format: ``2024-01-01T00:00:00.000Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass
class Contact:
    id: int
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None

    @property
    def archived(self) -> bool:
        return self.archived_ms is not None

    def value(self, name: str) -> str | None:
        if name == "hs_object_id":
            return str(self.id)
        if name == "createdate":
            return iso(self.created_ms)
        if name == "lastmodifieddate":
            return iso(self.updated_ms)
        return self.properties.get(name)

    def render(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        wanted = list(names) if names else list(DEFAULT_PROPERTIES)
        props = {n: self.value(n) for n in dict.fromkeys([*wanted, *READ_ONLY]) if n in KNOWN}
        body: dict[str, Any] = {
            "id": str(self.id),
            "properties": props,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "archived": self.archived,
        }
        if self.archived_ms is not None:
            body["archivedAt"] = iso(self.archived_ms)
        return body


ChangeKind = Literal["creation", "propertyChange", "deletion", "merge"]


@dataclass
class Change:
    """A contact change, as a webhook subscription sees it."""

    kind: ChangeKind
    object_id: int
    occurred_ms: int
    source: str
    property_name: str | None = None
    property_value: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# A compact literal; one name per line would swamp the module.
FIRST_NAMES = (  # noqa: SIM905
    "Ada Alan Grace Linus Margaret Dennis Barbara Ken Radia Tim Frances Edsger Hedy John Katherine "
    "Guido Anita Donald Sophie Niklaus Lynn Bjarne Karen Vint Joan"
).split()
LAST_NAMES = (  # noqa: SIM905
    "Lovelace Turing Hopper Torvalds Hamilton Ritchie Liskov Thompson Perlman Berners-Lee Allen "
    "Dijkstra Lamarr McCarthy Johnson Rossum Borg Knuth Wilson Wirth Conway Stroustrup Jones Cerf "
    "Clarke"
).split()
COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell")


class ContactStore:
    """The portal's contacts (thread-safe). Every mutation notifies ``listeners`` with changes."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.contacts: dict[int, Contact] = {}
        self.by_email: dict[str, int] = {}
        self.next_id = 1
        self.listeners: list[Callable[[list[Change]], None]] = []

    def seed(
        self,
        count: int,
        *,
        seed: int = 0,
        start_ms: int = 1_704_067_200_000,
        spacing_ms: int = 1000,
    ) -> None:
        """Add ``count`` deterministic contacts (same seed, same contacts); fires no webhooks.

        ``spacing_ms=0`` gives them all one timestamp (the case that breaks timestamp-sorted
        search paging past 10,000 results).
        """
        rng = random.Random(seed)
        with self.lock:
            for i in range(count):
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                cid = self.next_id
                self.next_id += 1
                email = f"{first}.{last}.{cid}@example.com".lower()
                ts = start_ms + i * spacing_ms
                props = {
                    "email": email,
                    "firstname": first,
                    "lastname": last,
                    "company": rng.choice(COMPANIES),
                    "phone": f"+1555{rng.randrange(10**7):07d}",
                }
                self.contacts[cid] = Contact(cid, props, ts, ts)
                self.by_email[email] = cid

    def _notify(self, changes: list[Change]) -> None:
        if not changes:
            return
        for listener in list(self.listeners):
            listener(changes)

    def get(self, cid: int, *, archived: bool = False) -> Contact | None:
        with self.lock:
            contact = self.contacts.get(cid)
            if contact is None or contact.archived != archived:
                return None
            return contact

    def find(self, key: str, id_property: str | None, *, archived: bool = False) -> Contact | None:
        with self.lock:
            if id_property == "email":
                cid = self.by_email.get(key.strip().lower())
                if cid is not None and not archived:
                    return self.get(cid)
                if archived:
                    return next(
                        (
                            c
                            for c in self.contacts.values()
                            if c.archived and c.properties.get("email") == key.strip().lower()
                        ),
                        None,
                    )
                return None
            if not key.isdigit():
                return None
            return self.get(int(key), archived=archived)

    def active(self) -> list[Contact]:
        with self.lock:
            return [c for c in self.contacts.values() if not c.archived]

    def create(self, props: dict[str, str], *, source: str = "API") -> Contact:
        with self.lock:
            email = props.get("email")
            if email and email in self.by_email:
                raise conflict(self.by_email[email])
            ts = max(now_ms(), 1)
            cid = self.next_id
            self.next_id += 1
            contact = Contact(cid, dict(props), ts, ts)
            self.contacts[cid] = contact
            if email:
                self.by_email[email] = cid
            changes = [Change("creation", cid, ts, source)]
            changes += [
                Change("propertyChange", cid, ts, source, name, value)
                for name, value in props.items()
            ]
        self._notify(changes)
        return contact

    def update(self, contact: Contact, props: dict[str, str], *, source: str = "API") -> Contact:
        with self.lock:
            if contact.archived:
                raise HubSpotError(404, "OBJECT_NOT_FOUND", NOT_FOUND)
            new_email = props.get("email")
            if new_email and self.by_email.get(new_email, contact.id) != contact.id:
                raise conflict(self.by_email[new_email])
            changed = {n: v for n, v in props.items() if contact.properties.get(n) != v}
            if not changed:
                return contact
            ts = max(now_ms(), contact.updated_ms)
            old_email = contact.properties.get("email")
            for name, value in changed.items():
                if value == "":
                    contact.properties.pop(name, None)
                else:
                    contact.properties[name] = value
            if "email" in changed:
                if old_email:
                    self.by_email.pop(old_email, None)
                if new_email:
                    self.by_email[new_email] = contact.id
            contact.updated_ms = ts
            changes = [
                Change("propertyChange", contact.id, ts, source, n, v) for n, v in changed.items()
            ]
        self._notify(changes)
        return contact

    def archive(self, contact: Contact, *, source: str = "API") -> None:
        with self.lock:
            if contact.archived:
                return
            ts = max(now_ms(), contact.updated_ms)
            contact.archived_ms = ts
            contact.updated_ms = ts
            email = contact.properties.get("email")
            if email and self.by_email.get(email) == contact.id:
                del self.by_email[email]
        self._notify([Change("deletion", contact.id, ts, source)])

    def merge(self, primary: Contact, secondary: Contact, *, source: str = "API") -> Contact:
        """Fold ``secondary`` into ``primary``: primary keeps its values, gains missing ones."""
        if primary.id == secondary.id or primary.archived or secondary.archived:
            raise validation_error("Cannot merge an object with itself or an archived object.")
        with self.lock:
            ts = max(now_ms(), primary.updated_ms, secondary.updated_ms)
            moved = {
                n: v
                for n, v in secondary.properties.items()
                if n != "email" and n not in primary.properties
            }
            primary.properties.update(moved)
            primary.updated_ms = ts
            secondary.archived_ms = ts
            email = secondary.properties.get("email")
            if email and self.by_email.get(email) == secondary.id:
                del self.by_email[email]
        extra = {
            "primaryObjectId": primary.id,
            "mergedObjectIds": [secondary.id],
            "newObjectId": primary.id,
            "numberOfPropertiesMoved": len(moved),
        }
        self._notify([Change("merge", primary.id, ts, source, extra=extra)])
        return primary


def clean_properties(
    raw: Any, *, partial: bool, rejected_domains: Collection[str] = ()
) -> dict[str, str]:
    """Validate input properties the way HubSpot does (unknown, read-only, bad email → 400).

    ``rejected_domains``: addresses HubSpot refuses although they are well-formed (as it does
    for some it deems invalid), for exercising a CRM refusal end to end."""
    if raw is None and partial:
        raise validation_error("No properties given.")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise validation_error("Invalid input JSON: properties must be an object.")
    problems: list[dict[str, Any]] = []
    out: dict[str, str] = {}
    for name, value in raw.items():
        if name in READ_ONLY:
            msg = f'"{name}" is a read only property; its value cannot be set.'
            problems.append(_invalid(name, msg, "READ_ONLY_VALUE"))
            continue
        if name not in WRITABLE:
            problems.append(
                _invalid(name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST")
            )
            continue
        text = (
            "" if value is None else (json.dumps(value) if isinstance(value, bool) else str(value))
        )
        if name == "email" and text:
            text = text.strip().lower()
            if not EMAIL.match(text) or text.rpartition("@")[2] in rejected_domains:
                problems.append(_invalid(name, f"Email address {text} is invalid", "INVALID_EMAIL"))
                continue
        out[name] = text
    if problems:
        raise validation_error(
            "Property values were not valid: " + json.dumps(problems, separators=(",", ":"))
        )
    return out


def _invalid(name: str, message: str, error: str) -> dict[str, Any]:
    return {
        "isValid": False,
        "message": message,
        "error": error,
        "name": name,
        "localizedErrorMessage": message,
    }
