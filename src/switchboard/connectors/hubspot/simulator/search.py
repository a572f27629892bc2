"""Search: filter groups compiled to predicates over contacts, and the sort order."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from switchboard.connectors.hubspot.simulator.errors import validation_error
from switchboard.connectors.hubspot.simulator.store import KNOWN, Contact

DATETIME_PROPERTIES = ("createdate", "lastmodifieddate")
NUMBER_PROPERTIES = ("hs_object_id",)
TEXT_SEARCHED = ("firstname", "lastname", "email", "phone", "company", "website")
OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
SEARCH_MAX_RESULTS = 10_000


def _key(name: str, value: str, *, strict: bool) -> Any:
    """The comparable form of a property value (epoch ms, int, or lower-cased text)."""
    if name in DATETIME_PROPERTIES:
        if value.lstrip("-").isdigit():
            return int(value)
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            if strict:
                raise validation_error(
                    f"{value} is not a valid long (epoch milliseconds) or date for {name}"
                ) from None
            return None
    if name in NUMBER_PROPERTIES:
        try:
            return int(value)
        except ValueError:
            if strict:
                raise validation_error(f"{value} is not a valid number for {name}") from None
            return None
    return value.lower()


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^\w]+", text.lower()) if t]


def compile_filter(raw: Any) -> Callable[[Contact], bool]:
    if not isinstance(raw, dict):
        raise validation_error("Invalid filter.")
    name, op = raw.get("propertyName"), str(raw.get("operator"))
    if not isinstance(name, str) or name not in KNOWN:
        raise validation_error(f"There was a problem with the request. Unknown property {name}")
    if op not in OPERATORS:
        raise validation_error(f"Unknown filter operator {op}")

    def key(v: Any) -> Any:
        if v is None:
            raise validation_error(f"filter on {name} with operator {op} needs a value")
        return _key(name, str(v), strict=True)

    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        want = op == "HAS_PROPERTY"
        return lambda c: (c.value(name) not in (None, "")) == want
    if op in ("IN", "NOT_IN"):
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise validation_error(f"{op} requires a non-empty values list")
        keys = {key(v) for v in values}
        inside = op == "IN"
        return lambda c: _match(c, name, lambda k: (k in keys) == inside, missing=not inside)
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(raw.get("value", "")).lower()
        contains = op == "CONTAINS_TOKEN"

        def has_token(c: Contact) -> bool:
            text = c.value(name)
            if text is None:
                return not contains
            hit = any(fnmatch.fnmatchcase(t, pattern) for t in [*_tokens(text), text.lower()])
            return hit == contains

        return has_token
    if op == "BETWEEN":
        low, high = key(raw.get("value")), key(raw.get("highValue"))
        return lambda c: _match(c, name, lambda k: low <= k <= high)
    target = key(raw.get("value"))
    compare: dict[str, Callable[[Any], bool]] = {
        "EQ": lambda k: k == target,
        "NEQ": lambda k: k != target,
        "LT": lambda k: k < target,
        "LTE": lambda k: k <= target,
        "GT": lambda k: k > target,
        "GTE": lambda k: k >= target,
    }
    return lambda c: _match(c, name, compare[op], missing=op == "NEQ")


def _comparable(c: Contact, name: str) -> Any:
    """The value :func:`_key` would give, without a round trip through the ISO string."""
    if name == "hs_object_id":
        return c.id
    if name == "createdate":
        return c.created_ms
    if name == "lastmodifieddate":
        return c.updated_ms
    value = c.properties.get(name)
    return None if value is None else _key(name, value, strict=False)


def _match(c: Contact, name: str, test: Callable[[Any], bool], *, missing: bool = False) -> bool:
    k = _comparable(c, name)
    return missing if k is None else test(k)


def compile_search(body: dict[str, Any]) -> tuple[Callable[[Contact], bool], str, bool]:
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > 5:
        raise validation_error("At most 5 filterGroups are allowed.")
    compiled: list[list[Callable[[Contact], bool]]] = []
    total = 0
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or len(filters) > 6:
            raise validation_error("Each filterGroup takes at most 6 filters.")
        total += len(filters)
        compiled.append([compile_filter(f) for f in filters])
    if total > 18:
        raise validation_error("At most 18 filters are allowed in total.")
    query = body.get("query")
    needle = str(query).lower().strip() if query else ""

    def matches(c: Contact) -> bool:
        if compiled and not any(all(f(c) for f in group) for group in compiled):
            return False
        if needle:
            return any(needle in (c.value(n) or "").lower() for n in TEXT_SEARCHED)
        return True

    sorts = body.get("sorts") or []
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise validation_error("Only one sort is allowed.")
    sort_by, descending = "hs_object_id", False
    if sorts:
        sort = sorts[0]
        if isinstance(sort, str):
            descending = sort.startswith("-")
            sort_by = sort.lstrip("-")
        elif isinstance(sort, dict) and isinstance(sort.get("propertyName"), str):
            sort_by = sort["propertyName"]
            descending = str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
        else:
            raise validation_error("Invalid sort.")
        if sort_by not in KNOWN:
            raise validation_error(f"Unknown sort property {sort_by}")
    return matches, sort_by, descending


def sort_key(name: str) -> Callable[[Contact], tuple[int, Any, int]]:
    def key(c: Contact) -> tuple[int, Any, int]:
        k = _comparable(c, name)
        # Contacts without the value sort last, like HubSpot; the id breaks ties.
        return (1, "", c.id) if k is None else (0, k, c.id)

    return key
