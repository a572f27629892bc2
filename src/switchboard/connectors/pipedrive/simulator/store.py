"""The simulated Pipedrive company's persons and organizations, in Pipedrive's API v1 shapes.

Thread-safe (tests call it from their own thread while the API serves on another). Every change
is reported to ``on_change(action, current, previous)`` (the webhook sender), after the lock is
released. Times are ``YYYY-MM-DD HH:MM:SS`` UTC from the injected clock.

Modelled as Pipedrive documents it: ``name`` is what is written; ``first_name``/``last_name`` are
derived from it (first word / the rest). ``email``/``phone`` are lists of ``{value, primary,
label}`` (a bare string is accepted on writes); a person without one lists
``[{"value": "", "primary": true}]``. A deleted person stays readable by id with ``active_flag``
false; lists and searches leave it out. Duplicate emails are allowed. Custom person fields are
top-level keys named by a 40-character hex hash; this company has a text field under every such
key (a text or number is kept, ``null`` or ``""`` clears it); other unknown keys are ignored, as
Pipedrive ignores them.
"""

from __future__ import annotations

import copy
import random
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Person = dict[str, Any]
OnChange = Callable[[str, Person | None, Person | None], None]

FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Perlman")
ORGS = ("Analytical Engines Ltd", "Compilers Inc", "Bletchley Park")
CUSTOM_KEY = re.compile(r"[0-9a-f]{40}")


class Refused(Exception):
    """A request Pipedrive would refuse: ``status`` and its ``error`` message."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def split_name(name: str) -> tuple[str | None, str | None]:
    first, _, last = name.strip().partition(" ")
    return first or None, last.strip() or None


def _items(value: Any, what: str) -> list[dict[str, Any]]:
    """A written ``email``/``phone``: a string or a list of strings or ``{value, primary?,
    label?}``; the first item is primary unless one says so."""
    if value is None or value == "":
        return []
    raw = value if isinstance(value, list) else [value]
    items: list[dict[str, Any]] = []
    for item in raw:
        if isinstance(item, str):
            item = {"value": item}
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise Refused(400, f"{what} must be a string or a list of {{value, primary, label}}")
        if item["value"].strip():
            primary = item.get("primary") in (True, "true")
            items.append(
                {
                    "value": item["value"].strip(),
                    "primary": primary,
                    "label": str(item.get("label") or "work"),
                }
            )
    if items and not any(i["primary"] for i in items):
        items[0]["primary"] = True
    seen_primary = False
    for item in items:  # at most one primary: the first one marked
        item["primary"] = item["primary"] and not seen_primary
        seen_primary = seen_primary or item["primary"]
    return items


class Store:
    def __init__(
        self, *, clock: Callable[[], float] = time.time, on_change: OnChange | None = None
    ) -> None:
        self._lock = threading.RLock()
        self.clock = clock
        self.on_change = on_change
        self.persons: dict[int, Person] = {}
        self.orgs: dict[int, str] = {}
        self._next_person = 1
        self._next_org = 1

    def now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d %H:%M:%S")

    # organizations

    def add_org(self, name: str) -> int:
        with self._lock:
            org_id = self._next_org
            self._next_org += 1
            self.orgs[org_id] = name
            return org_id

    # persons

    def create(self, body: dict[str, Any]) -> Person:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Refused(400, "Name must be given.")
        with self._lock:
            now = self.now()
            person: Person = {
                "id": self._next_person,
                "active_flag": True,
                "add_time": now,
                "update_time": now,
                "visible_to": "3",
                "email": [],
                "phone": [],
                "org_id": None,
            }
            self._apply(person, body)
            self._next_person += 1
            self.persons[person["id"]] = person
            current = copy.deepcopy(person)
        self._changed("added", current, None)
        return current

    def update(self, person_id: int, body: dict[str, Any]) -> Person:
        if "name" in body and (not isinstance(body["name"], str) or not body["name"].strip()):
            raise Refused(400, "Name must be given.")
        with self._lock:
            person = self._live(person_id)
            previous = copy.deepcopy(person)
            self._apply(person, body)
            if person != previous:
                person["update_time"] = self.now()
            current = copy.deepcopy(person)
        if current != previous:
            self._changed("updated", current, previous)
        return current

    def delete(self, person_id: int) -> None:
        with self._lock:
            person = self._live(person_id)
            previous = copy.deepcopy(person)
            person["active_flag"] = False
            person["update_time"] = self.now()
        self._changed("deleted", None, previous)

    def merge(self, person_id: int, *, into: int) -> Person:
        """Merge ``person_id`` into ``into``: ``into`` remains (gaining the other's emails and
        phones it lacks) and the other is deleted; one ``merged`` change, whose current is the
        remaining person (``merge_what_id``: the merged one) and previous the merged one."""
        if person_id == into:
            raise Refused(400, "Cannot merge a person with itself.")
        with self._lock:
            merged, kept = self._live(person_id), self._live(into)
            previous = copy.deepcopy(merged)
            for key in ("email", "phone"):
                values = {i["value"] for i in kept[key]}
                kept[key] += [
                    {**i, "primary": False} for i in merged[key] if i["value"] not in values
                ]
            merged["active_flag"] = False
            merged["update_time"] = kept["update_time"] = self.now()
            current = {**copy.deepcopy(kept), "merge_what_id": person_id}
        self._changed("merged", current, previous)
        return current

    def get(self, person_id: int) -> Person:
        with self._lock:
            person = self.persons.get(person_id)
            if person is None:
                raise Refused(404, "Person not found")
            return copy.deepcopy(person)

    def active(self) -> list[Person]:
        with self._lock:
            return [copy.deepcopy(p) for _, p in sorted(self.persons.items()) if p["active_flag"]]

    def seed(self, count: int, *, seed: int = 0) -> list[Person]:
        """``count`` persons with deterministic names, emails, phones and organizations."""
        rng = random.Random(seed)
        with self._lock:
            orgs = list(self.orgs) or [self.add_org(name) for name in ORGS]
        made = []
        for n in range(count):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            made.append(
                self.create(
                    {
                        "name": f"{first} {last}",
                        "email": f"{first}.{last}.{n}@example.com".lower(),
                        "phone": f"+1555{n:07d}",
                        "org_id": rng.choice(orgs),
                    }
                )
            )
        return made

    # helpers

    def _live(self, person_id: int) -> Person:
        person = self.persons.get(person_id)
        if person is None or not person["active_flag"]:
            raise Refused(404, "Person not found")
        return person

    def _apply(self, person: Person, body: dict[str, Any]) -> None:
        if "name" in body:
            person["name"] = body["name"].strip()
            person["first_name"], person["last_name"] = split_name(person["name"])
        if "email" in body:
            person["email"] = _items(body["email"], "email")
        if "phone" in body:
            person["phone"] = _items(body["phone"], "phone")
        if "org_id" in body:
            org_id = body["org_id"]
            if org_id is not None and (
                isinstance(org_id, bool) or not isinstance(org_id, int) or org_id not in self.orgs
            ):
                raise Refused(400, "Organization not found.")
            person["org_id"] = org_id
        person["org_name"] = self.orgs.get(person["org_id"]) if person["org_id"] else None
        for key, value in body.items():
            if not CUSTOM_KEY.fullmatch(key):
                continue
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, str | int | float)
            ):
                raise Refused(400, f"Custom field {key} takes a text or a number")
            person[key] = None if value == "" else value

    def _changed(self, action: str, current: Person | None, previous: Person | None) -> None:
        if self.on_change is not None:
            self.on_change(action, current, previous)


def as_api(person: Person) -> Person:
    """A stored person as the API answers it: ``org_id`` expanded, empty lists as Pipedrive
    shows them."""
    out = copy.deepcopy(person)
    org_id = out.get("org_id")
    out["org_id"] = {"name": out.get("org_name"), "value": org_id} if org_id else None
    for key in ("email", "phone"):
        if not out.get(key):
            out[key] = [{"value": "", "primary": True}]
    return out
