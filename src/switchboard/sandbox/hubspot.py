"""HubSpot simulator: CRM v3 contacts, search, OAuth token endpoint, rate limits, signed webhooks.

Wire facts: ``shared/providers/HUBSPOT.md``. The official ``hubspot-api-client`` SDK works against
it unchanged (``hubspot.Client.create(access_token="pat-sandbox", host=base_url)``).

Control endpoints (no auth, no rate limit, no faults), for tests and for playing "a user in the
HubSpot UI":

* ``POST /_sandbox/hubspot/contacts`` ``{"properties": {...}}`` → 201 the contact;
  ``PATCH /_sandbox/hubspot/contacts/{id}`` ``{"properties": {...}}`` → 200;
  ``DELETE /_sandbox/hubspot/contacts/{id}`` → 204;
  ``POST /_sandbox/hubspot/contacts/merge`` ``{"primaryObjectId", "objectIdToMerge"}`` → 200.
  These fire webhooks with ``changeSource: "CRM_UI"``.
* ``GET /_sandbox/hubspot/state`` → ``{"contacts", "archived", "limits", "webhooks"}``.
* ``GET|PUT|PATCH /_sandbox/hubspot/limits`` → :class:`HubSpotLimits` (PUT/PATCH also resets the
  windows).
* ``POST /_sandbox/hubspot/tokens`` ``{"token", "expires_in"?}`` registers an access token;
  ``POST /_sandbox/hubspot/tokens/expire`` ``{"token"?}`` expires one (or every OAuth) token.
* ``GET|PUT|PATCH /_sandbox/hubspot/webhooks`` → :class:`HubSpotWebhookSettings` plus delivery
  ``stats`` and ``attempts``; ``DELETE`` clears the attempt log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fnmatch
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from switchboard.sandbox.faults import (
    LOG_ENTRY,
    Faults,
    FaultState,
    RequestLog,
    SandboxMiddleware,
)
from switchboard.sandbox.webhooks import Outbox

# Public on purpose: the sandbox's well-known credentials.
PRIVATE_APP_TOKEN = "pat-sandbox"  # noqa: S105
CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105
REFRESH_TOKEN = "sandbox-refresh-token"  # noqa: S105
PORTAL_ID = 62515
APP_ID = 1160452

CONTACTS = "/crm/v3/objects/contacts"
AUTH_HELP = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
NOT_FOUND = "Object not found.  objectId are usually numeric."

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
# HubSpot refuses an address whose top-level domain is not a real one; a TLD is letters (or an
# IDN's punycode), never digits: ``bad@example.c0m`` passes a syntax check and fails here.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.(?:[^\W\d_]{2,63}|xn--[a-z0-9-]+)$")


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    """HubSpot's timestamp format: ``2024-01-01T00:00:00.000Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


# --- errors ----------------------------------------------------------------------------------


class HubSpotError(Exception):
    """An error answer, rendered as HubSpot's error body."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        context: dict[str, list[str]] | None = None,
        errors: list[dict[str, Any]] | None = None,
        sub_category: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.context = context
        self.errors = errors
        self.sub_category = sub_category
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": str(uuid.uuid4()),
            "category": self.category,
        }
        if self.sub_category:
            body["subCategory"] = self.sub_category
        if self.context:
            body["context"] = self.context
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def validation_error(message: str, **kw: Any) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, **kw)


def rate_limited(policy: Literal["TEN_SECONDLY_ROLLING", "SECONDLY", "DAILY"]) -> JSONResponse:
    """HubSpot's 429 body (it carries ``errorType`` and ``policyName``, not ``category``)."""
    name = {"TEN_SECONDLY_ROLLING": "ten_secondly_rolling", "SECONDLY": "secondly"}.get(
        policy, "daily"
    )
    return JSONResponse(
        {
            "status": "error",
            "message": f"You have reached your {name} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
        },
        status_code=429,
    )


def _server_error(status: int) -> Response:
    return HubSpotError(
        status, "INTERNAL_ERROR", "internal error", sub_category="SANDBOX_FAULT"
    ).response()


def _unavailable() -> Response:
    return HubSpotError(503, "SERVICE_UNAVAILABLE", "Service Unavailable").response()


# --- tokens ----------------------------------------------------------------------------------


@dataclass
class Token:
    """An access token the simulator accepts."""

    value: str
    kind: Literal["private_app", "oauth"]
    expires_at: float | None = None  # epoch seconds
    rate_key: str = ""  # whose 10-second budget it spends (per app, not per token)

    def __post_init__(self) -> None:
        self.rate_key = self.rate_key or self.value


class TokenRegistry:
    """Access tokens a HubSpot simulator accepts; shared with the Nango simulator (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}

    def add(self, token: Token) -> Token:
        with self._lock:
            self._tokens[token.value] = token
        return token

    def add_private_app(self, value: str) -> Token:
        return self.add(Token(value, "private_app"))

    def issue(self, ttl: float, *, rate_key: str, prefix: str = "sandbox-oauth-") -> Token:
        """Mint a fresh OAuth access token valid for ``ttl`` seconds."""
        value = prefix + secrets.token_urlsafe(24)
        return self.add(Token(value, "oauth", time.time() + ttl, rate_key))

    def get(self, value: str) -> Token | None:
        with self._lock:
            return self._tokens.get(value)

    def revoke(self, value: str) -> None:
        with self._lock:
            self._tokens.pop(value, None)

    def expire(self, value: str | None = None) -> int:
        """Expire one token, or every OAuth token; returns how many."""
        past = time.time() - 1
        with self._lock:
            if value is not None:
                targets = [t for t in (self._tokens.get(value),) if t is not None]
            else:
                targets = [t for t in self._tokens.values() if t.kind == "oauth"]
            for token in targets:
                token.expires_at = past
            return len(targets)


# --- limits ----------------------------------------------------------------------------------


class HubSpotLimits(BaseModel):
    """Rate limits; the defaults are HubSpot's (Free/Starter, private app)."""

    model_config = ConfigDict(extra="forbid")

    per_interval: int = Field(100, ge=1, description="Requests per rolling interval, per app.")
    interval_ms: int = Field(10_000, ge=1, description="The rolling interval.")
    daily: int = Field(250_000, ge=1, description="Requests per day, per account.")
    search_per_second: int = Field(5, ge=1, description="Search requests per search window.")
    search_window_ms: int = Field(1000, ge=1, description="The search window (1 s at HubSpot).")


class SlidingWindow:
    """A rolling-window limiter: at most ``limit`` hits in any ``window`` seconds, per key.

    Check and record happen under one lock, so concurrent requests can never overshoot.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> tuple[bool, int, float]:
        """Record a hit if allowed; returns (allowed, remaining, the monotonic time used)."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False, 0, now
            hits.append(now)
            return True, self.limit - len(hits), now


class DailyCounter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._day = ""
        self._count = 0

    def hit(self) -> tuple[bool, int]:
        today = datetime.now(UTC).date().isoformat()
        with self._lock:
            if today != self._day:
                self._day, self._count = today, 0
            if self._count >= self.limit:
                return False, 0
            self._count += 1
            return True, self.limit - self._count


# --- contacts --------------------------------------------------------------------------------


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


def conflict(existing: int) -> HubSpotError:
    return HubSpotError(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")


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


# --- search ----------------------------------------------------------------------------------


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


# --- webhooks --------------------------------------------------------------------------------


class HubSpotWebhookSettings(BaseModel):
    """Where and how the simulator posts contact webhooks (nothing is sent without ``url``)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    client_secret: str = CLIENT_SECRET
    app_id: int = APP_ID
    portal_id: int = PORTAL_ID
    batch_window_ms: int = Field(50, ge=0, description="Collect events this long per batch.")
    max_batch: int = Field(100, ge=1, le=100)
    max_attempts: int = Field(10, ge=1, description="HubSpot tries up to 10 times.")
    retry_base_seconds: float = Field(1.0, ge=0, description="First retry wait; doubles after.")
    retry_cap_seconds: float = Field(60.0, ge=0)
    timeout_seconds: float = Field(5.0, gt=0, description="HubSpot gives up on a call after 5 s.")
    duplicate_rate: float = Field(0.0, ge=0, le=1, description="Share of batches sent twice.")
    shuffle: bool = Field(False, description="Deliver events out of order.")
    properties: list[str] | None = Field(
        None, description="propertyChange subscriptions; null: every writable property."
    )
    seed: int = 0


SUBSCRIPTION_IDS: dict[ChangeKind, int] = {
    "creation": 1001,
    "propertyChange": 1002,
    "deletion": 1003,
    "merge": 1004,
}


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """``X-HubSpot-Signature-v3``: base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_v1(secret: str, body: bytes) -> str:
    """``X-HubSpot-Signature`` (v1): hex SHA-256 of ``client_secret + body``."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


class HubSpotWebhooks:
    """Turns store changes into batched, signed, retried webhook deliveries."""

    def __init__(self, settings: HubSpotWebhookSettings | None = None) -> None:
        self._lock = threading.Lock()
        self.settings = settings or HubSpotWebhookSettings()
        self.outbox = self._new_outbox()
        self._pending: list[dict[str, Any]] = []
        self._next_event = 1
        self._rng = random.Random(self.settings.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _new_outbox(self) -> Outbox:
        s = self.settings
        return Outbox(
            max_attempts=s.max_attempts,
            backoff_base=s.retry_base_seconds,
            backoff_cap=s.retry_cap_seconds,
            timeout=s.timeout_seconds,
        )

    def configure(self, **changes: Any) -> HubSpotWebhookSettings:
        with self._lock:
            self.settings = HubSpotWebhookSettings.model_validate(
                {**self.settings.model_dump(), **changes}
            )
            s = self.settings
            self._rng = random.Random(s.seed)
            self.outbox.max_attempts = s.max_attempts
            self.outbox.backoff_base = s.retry_base_seconds
            self.outbox.backoff_cap = s.retry_cap_seconds
            self.outbox.timeout = s.timeout_seconds
            return self.settings

    def on_changes(self, changes: list[Change]) -> None:
        with self._lock:
            s = self.settings
            if s.url is None:
                return
            subscribed = set(s.properties) if s.properties is not None else set(WRITABLE)
            for change in changes:
                if change.kind == "propertyChange" and change.property_name not in subscribed:
                    continue
                self._pending.append(self._event(change, s))
            loop, wake = self._loop, self._wake
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def _event(self, change: Change, s: HubSpotWebhookSettings) -> dict[str, Any]:
        event: dict[str, Any] = {
            "eventId": self._next_event,
            "subscriptionId": SUBSCRIPTION_IDS[change.kind],
            "portalId": s.portal_id,
            "appId": s.app_id,
            "occurredAt": change.occurred_ms,
            "subscriptionType": f"contact.{change.kind}",
            "attemptNumber": 0,
            "objectId": change.object_id,
            "changeFlag": {
                "creation": "CREATED",
                "deletion": "DELETED",
                "merge": "MERGED",
                "propertyChange": "UPDATED",
            }[change.kind],
            "changeSource": change.source,
            **change.extra,
        }
        self._next_event += 1
        if change.kind == "propertyChange":
            event["propertyName"] = change.property_name
            event["propertyValue"] = change.property_value or ""
        return event

    async def start(self) -> None:
        await self.outbox.start()
        with self._lock:
            self._loop = asyncio.get_running_loop()
            if self._pending:
                self._wake.set()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        with self._lock:
            self._loop = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.outbox.stop()

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._pending and self.outbox.idle

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.settings.batch_window_ms / 1000)
            while True:
                with self._lock:
                    s = self.settings
                    batch, self._pending = (
                        self._pending[: s.max_batch],
                        self._pending[s.max_batch :],
                    )
                    if not batch:
                        break
                    if s.shuffle:
                        self._rng.shuffle(batch)
                    copies = 2 if self._rng.random() < s.duplicate_rate else 1
                for _ in range(copies):
                    self.outbox.submit(self._builder(batch, s))

    @staticmethod
    def _builder(
        batch: list[dict[str, Any]], s: HubSpotWebhookSettings
    ) -> Callable[[int], tuple[str, bytes, dict[str, str]]]:
        assert s.url is not None
        url, secret = s.url, s.client_secret

        def build(attempt: int) -> tuple[str, bytes, dict[str, str]]:
            events = [{**e, "attemptNumber": attempt} for e in batch]
            body = json.dumps(events, separators=(",", ":")).encode()
            timestamp = str(now_ms())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: sandbox)",
                "X-HubSpot-Request-Timestamp": timestamp,
                "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, timestamp),
                "X-HubSpot-Signature": sign_v1(secret, body),
                "X-HubSpot-Signature-Version": "v1",
            }
            return url, body, headers

        return build


# --- the simulator ---------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


def _encode_after(cid: int) -> str:
    # Opaque on purpose: clients must echo it, not compute it.
    return base64.urlsafe_b64encode(f"c{cid}".encode()).decode().rstrip("=")


def _decode_after(after: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raw = ""
    if not raw.startswith("c") or not raw[1:].isdigit():
        raise validation_error(f"Invalid after token: {after}")
    return int(raw[1:])


def _properties_param(request: Request) -> list[str] | None:
    values = request.query_params.getlist("properties")
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise validation_error(
            f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation_error("Invalid input JSON: expected an object.")
    return body


def _inputs(body: dict[str, Any], request: Request) -> list[Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise validation_error("Invalid input JSON: inputs must be a list.")
    if len(inputs) > BATCH_LIMIT:
        raise validation_error(
            f"The maximum number of inputs supported in a batch request is {BATCH_LIMIT}. "
            "Please reduce the number of items and try again",
            context={"inputs": [str(len(inputs))]},
        )
    # The request log shows how full each batch request was.
    request.scope.get(LOG_ENTRY, {})["inputs"] = len(inputs)
    return inputs


def _input_error(exc: HubSpotError, key: str) -> dict[str, Any]:
    """One input's error in a 207 answer: the other inputs of the batch went through."""
    return {
        "status": "error",
        "category": exc.category,
        "message": exc.message,
        "context": {"ids": [key]},
    }


BATCH_LIMIT = 100


def _batch(results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str) -> Response:
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso(now_ms()),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
    return JSONResponse(body, status_code=207 if errors else 200)


class HubSpotSimulator:
    """A HubSpot portal with contacts, an OAuth app, rate limits and webhook subscriptions."""

    def __init__(
        self,
        *,
        tokens: TokenRegistry | None = None,
        private_app_token: str | None = PRIVATE_APP_TOKEN,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        refresh_token: str = REFRESH_TOKEN,
        access_token_ttl: float = 1800,
        rotate_refresh_tokens: bool = True,
        limits: HubSpotLimits | None = None,
        contacts: int = 0,
        seed: int = 0,
        first_id: int | None = None,
        rejected_email_domains: Collection[str] = (),
        search_lag_ms: int = 0,
        webhooks: HubSpotWebhookSettings | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.tokens = tokens or TokenRegistry()
        if private_app_token:
            self.tokens.add_private_app(private_app_token)
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token_ttl = access_token_ttl
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self._refresh_lock = threading.Lock()
        self.refresh_tokens: set[str] = {refresh_token}
        self.search_lag_ms = search_lag_ms
        self.store = ContactStore()
        self.store.seed(contacts, seed=seed)
        if first_id is not None:
            self.store.next_id = max(self.store.next_id, first_id)
        self.rejected_email_domains = frozenset(d.lower() for d in rejected_email_domains)
        self.set_limits(limits or HubSpotLimits())
        self.webhooks = HubSpotWebhooks(webhooks)
        self.store.listeners.append(self.webhooks.on_changes)
        self.faults = FaultState(faults, seed=seed)
        self.log = RequestLog()
        self.app: ASGIApp = SandboxMiddleware(
            self._build(),
            faults=self.faults,
            log=self.log,
            throttled=lambda: rate_limited("TEN_SECONDLY_ROLLING"),
            unavailable=_unavailable,
            error=_server_error,
        )

    def set_limits(self, limits: HubSpotLimits) -> None:
        """Apply new limits and start every window afresh."""
        self.limits = limits
        self._rolling = SlidingWindow(limits.per_interval, limits.interval_ms / 1000)
        self._search = SlidingWindow(limits.search_per_second, limits.search_window_ms / 1000)
        self._daily = DailyCounter(limits.daily)

    # Python API for tests: the changes a user makes in the HubSpot UI.

    def ui_create(self, properties: dict[str, Any]) -> dict[str, Any]:
        props = clean_properties(
            properties, partial=False, rejected_domains=self.rejected_email_domains
        )
        return self.store.create(props, source="CRM_UI").render(props)

    def ui_update(self, contact_id: int | str, properties: dict[str, Any] | None) -> dict[str, Any]:
        contact = self._must(str(contact_id), None)
        props = clean_properties(
            properties, partial=True, rejected_domains=self.rejected_email_domains
        )
        return self.store.update(contact, props, source="CRM_UI").render(props)

    def ui_delete(self, contact_id: int | str) -> None:
        self.store.archive(self._must(str(contact_id), None), source="CRM_UI")

    def ui_merge(self, primary_id: int | str, merged_id: int | str) -> dict[str, Any]:
        primary = self._must(str(primary_id), None)
        merged = self._must(str(merged_id), None)
        return self.store.merge(primary, merged, source="CRM_UI").render()

    def _must(self, key: str, id_property: str | None, *, archived: bool = False) -> Contact:
        if id_property not in (None, "email", "hs_object_id"):
            raise validation_error(f"Property {id_property} is not a unique identifier property.")
        contact = self.store.find(key, id_property, archived=archived)
        if contact is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", NOT_FOUND, context={"id": [key]})
        return contact

    # auth and limits

    def _authenticate(self, request: Request) -> Token:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            raise HubSpotError(401, "INVALID_AUTHENTICATION", AUTH_HELP)
        if token.expires_at is not None and token.expires_at <= time.time():
            ago = max(0, int(time.time() - token.expires_at))
            amount = f"{ago} second(s)" if ago < 86_400 else f"{ago // 86_400} day(s)"
            expired = datetime.fromtimestamp(token.expires_at, UTC).isoformat()[:19] + "Z"
            raise HubSpotError(
                401,
                "EXPIRED_AUTHENTICATION",
                f"The OAuth token used to make this call expired {amount} ago.",
                context={"expire time": [expired]},
            )
        return token

    def _api(self, handler: Handler, *, search: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            headers: dict[str, str] = {}
            response: Response
            # The request log's entry (a throwaway dict when served without the middleware).
            entry: dict[str, Any] = request.scope.get(LOG_ENTRY, {})
            try:
                token = self._authenticate(request)
                allowed, daily_left = self._daily.hit()
                if not allowed:
                    return rate_limited("DAILY")
                if search:
                    # Search has its own per-second budget and sends no rate-limit headers.
                    ok, _, at = self._search.hit(token.rate_key)
                    if not ok:
                        return rate_limited("SECONDLY")
                    entry["admitted_at"] = at
                else:
                    ok, remaining, at = self._rolling.hit(token.rate_key)
                    headers = {
                        "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.limits.interval_ms),
                        "X-HubSpot-RateLimit-Max": str(self.limits.per_interval),
                        "X-HubSpot-RateLimit-Remaining": str(remaining),
                    }
                    if token.kind == "private_app":
                        headers["X-HubSpot-RateLimit-Daily"] = str(self.limits.daily)
                        headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(daily_left)
                    if not ok:
                        throttled = rate_limited("TEN_SECONDLY_ROLLING")
                        throttled.headers.update(headers)
                        return throttled
                    entry["admitted_at"] = at
                response = await handler(request)
            except HubSpotError as exc:
                response = exc.response()
            response.headers.update(headers)
            response.headers["X-HubSpot-Correlation-Id"] = str(uuid.uuid4())
            return response

        return endpoint

    # contacts endpoints

    async def list_contacts(self, request: Request) -> Response:
        q = request.query_params
        try:
            limit = int(q.get("limit", "10"))
        except ValueError:
            raise validation_error(f"Invalid limit: {q.get('limit')}") from None
        limit = max(1, min(limit, 100))  # HubSpot caps silently at 100
        after = _decode_after(q["after"]) if q.get("after") else 0
        archived = _flag(request, "archived")
        names = _properties_param(request)
        with self.store.lock:
            page = sorted(
                (
                    c
                    for c in self.store.contacts.values()
                    if c.archived == archived and c.id > after
                ),
                key=lambda c: c.id,
            )[: limit + 1]
            results = [c.render(names) for c in page[:limit]]
        body: dict[str, Any] = {"results": results}
        if len(page) > limit:
            token = _encode_after(page[limit - 1].id)
            link = str(request.url.replace(query=f"after={token}"))
            body["paging"] = {"next": {"after": token, "link": link}}
        return JSONResponse(body)

    async def get_contact(self, request: Request) -> Response:
        contact = self._must(
            request.path_params["contact_id"],
            request.query_params.get("idProperty"),
            archived=_flag(request, "archived"),
        )
        return JSONResponse(contact.render(_properties_param(request)))

    async def create_contact(self, request: Request) -> Response:
        body = _object(await _json_body(request))
        props = clean_properties(
            body.get("properties"), partial=False, rejected_domains=self.rejected_email_domains
        )
        contact = self.store.create(props)
        return JSONResponse(contact.render(props), status_code=201)

    async def update_contact(self, request: Request) -> Response:
        contact = self._must(
            request.path_params["contact_id"], request.query_params.get("idProperty")
        )
        body = _object(await _json_body(request))
        props = clean_properties(
            body.get("properties"), partial=True, rejected_domains=self.rejected_email_domains
        )
        return JSONResponse(self.store.update(contact, props).render(props))

    async def archive_contact(self, request: Request) -> Response:
        contact = self.store.find(request.path_params["contact_id"], None)
        if contact is not None:
            self.store.archive(contact)
        return Response(status_code=204)

    async def merge_contacts(self, request: Request) -> Response:
        body = _object(await _json_body(request))
        primary = self._must(str(body.get("primaryObjectId", "")), None)
        merged = self._must(str(body.get("objectIdToMerge", "")), None)
        return JSONResponse(self.store.merge(primary, merged).render())

    async def batch_read(self, request: Request) -> Response:
        started = iso(now_ms())
        body = _object(await _json_body(request))
        id_property = body.get("idProperty")
        archived = bool(body.get("archived", False))
        names = body.get("properties") or None
        results, missing = [], []
        for item in _inputs(body, request):
            key = str(item.get("id", "")) if isinstance(item, dict) else ""
            contact = self.store.find(key, id_property, archived=archived)
            if contact is None:
                missing.append(key)
            else:
                results.append(contact.render(names))
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CONTACT objects, they may be deleted or not "
                    "exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            )
        return _batch(results, errors, started)

    async def batch_create(self, request: Request) -> Response:
        started = iso(now_ms())
        body = _object(await _json_body(request))
        prepared = [
            clean_properties(
                item.get("properties") if isinstance(item, dict) else None,
                partial=False,
                rejected_domains=self.rejected_email_domains,
            )
            for item in _inputs(body, request)
        ]
        # All or nothing, like HubSpot: a duplicate email (existing or inside the batch) fails
        # the whole batch before anything is created.
        with self.store.lock:
            seen: set[str] = set()
            for props in prepared:
                email = props.get("email")
                if email and email in self.store.by_email:
                    raise conflict(self.store.by_email[email])
                if email and email in seen:
                    raise validation_error(f"Duplicate email {email} in batch inputs.")
                if email:
                    seen.add(email)
            created = [self.store.create(props) for props in prepared]
        results = [c.render(p) for c, p in zip(created, prepared, strict=True)]
        return JSONResponse(
            {
                "status": "COMPLETE",
                "results": results,
                "startedAt": started,
                "completedAt": iso(now_ms()),
            },
            status_code=201,
        )

    async def batch_update(self, request: Request) -> Response:
        """Each input on its own: an unknown id, a bad value or a taken email fails that input
        (207 with ``errors[]``), the others are updated."""
        started = iso(now_ms())
        body = _object(await _json_body(request))
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        missing: list[str] = []
        for item in _inputs(body, request):
            if not isinstance(item, dict):
                raise validation_error("Invalid input JSON: inputs must be objects.")
            key = str(item.get("id", ""))
            try:
                props = clean_properties(
                    item.get("properties"),
                    partial=True,
                    rejected_domains=self.rejected_email_domains,
                )
                contact = self.store.find(key, item.get("idProperty"))
                if contact is None:
                    missing.append(key)
                    continue
                results.append(self.store.update(contact, props).render(props))
            except HubSpotError as exc:
                errors.append(_input_error(exc, key))
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": NOT_FOUND,
                    "context": {"ids": missing},
                }
            )
        return _batch(results, errors, started)

    async def batch_upsert(self, request: Request) -> Response:
        """Creates the contacts whose email is unknown, updates the others (``new`` says
        which); a bad input fails alone (207)."""
        started = iso(now_ms())
        body = _object(await _json_body(request))
        inputs = _inputs(body, request)
        keys = [
            str(item.get("id", "")).strip().lower() if isinstance(item, dict) else ""
            for item in inputs
        ]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise validation_error(f"Duplicate IDs found in batch input: {duplicates}.")
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item, key in zip(inputs, keys, strict=True):
            if not isinstance(item, dict):
                raise validation_error("Invalid input JSON: inputs must be objects.")
            if item.get("idProperty") != "email":
                raise validation_error('Upsert needs idProperty "email" (a unique property).')
            try:
                props = clean_properties(
                    {**(item.get("properties") or {}), "email": key},
                    partial=False,
                    rejected_domains=self.rejected_email_domains,
                )
                with self.store.lock:
                    contact = self.store.find(key, "email")
                    if contact is None:
                        contact, new = self.store.create(props), True
                    else:
                        contact, new = self.store.update(contact, props), False
            except HubSpotError as exc:
                errors.append(_input_error(exc, key))
                continue
            results.append({**contact.render(props), "new": new})
        return _batch(results, errors, started)

    async def batch_archive(self, request: Request) -> Response:
        body = _object(await _json_body(request))
        for item in _inputs(body, request):
            key = str(item.get("id", "")) if isinstance(item, dict) else ""
            contact = self.store.find(key, None)
            if contact is not None:
                self.store.archive(contact)
        return Response(status_code=204)

    async def search(self, request: Request) -> Response:
        body = _object(await _json_body(request))
        matches, sort_by, descending = compile_search(body)
        try:
            limit = int(body.get("limit", 10))
            offset = int(body.get("after") or 0)
        except (TypeError, ValueError):
            raise validation_error("limit and after must be integers.") from None
        if not 0 < limit <= 200:
            raise validation_error(f"limit must be between 1 and 200, got {limit}.")
        if offset < 0 or offset + limit > SEARCH_MAX_RESULTS:
            raise validation_error(
                "Search results are limited to 10000 results: "
                f"after ({offset}) + limit ({limit}) is past the end of the allowed window."
            )
        names = body.get("properties") or None
        visible_before = now_ms() - self.search_lag_ms
        with self.store.lock:
            found = [
                c
                for c in self.store.contacts.values()
                if not c.archived and matches(c) and c.updated_ms <= visible_before
            ]
            found.sort(key=sort_key(sort_by), reverse=descending)
            page = [c.render(names) for c in found[offset : offset + limit]]
        out: dict[str, Any] = {"total": len(found), "results": page}
        if offset + limit < len(found):
            out["paging"] = {"next": {"after": str(offset + limit)}}
        return JSONResponse(out)

    # OAuth

    async def oauth_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}

        def bad(status: str, error: str, message: str) -> Response:
            return JSONResponse(
                {
                    "status": status,
                    "message": message,
                    "correlationId": str(uuid.uuid4()),
                    "error": error,
                    "error_description": message,
                },
                status_code=400,
            )

        if form.get("grant_type") != "refresh_token":
            return bad(
                "BAD_GRANT_TYPE", "unsupported_grant_type", "grant_type must be refresh_token"
            )
        if form.get("client_id") != self.client_id:
            return bad("BAD_CLIENT_ID", "invalid_client", "missing or unknown client id")
        if not hmac.compare_digest(form.get("client_secret", ""), self.client_secret):
            return bad("BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client secret")
        presented = form.get("refresh_token", "")
        with self._refresh_lock:
            if presented not in self.refresh_tokens:
                return bad(
                    "BAD_REFRESH_TOKEN",
                    "invalid_grant",
                    "refresh token is invalid, expired or revoked",
                )
            refresh = presented
            if self.rotate_refresh_tokens:
                # Rotation: the presented token is spent; only the new one works from now on.
                self.refresh_tokens.discard(presented)
                refresh = "sandbox-refresh-" + secrets.token_urlsafe(24)
                self.refresh_tokens.add(refresh)
        token = self.tokens.issue(self.access_token_ttl, rate_key=f"oauth:{self.client_id}")
        return JSONResponse(
            {
                "token_type": "bearer",
                "access_token": token.value,
                "refresh_token": refresh,
                "expires_in": int(self.access_token_ttl),
            }
        )

    # control endpoints

    async def control_create(self, request: Request) -> Response:
        body = _object(await _json_body(request))
        return JSONResponse(self.ui_create(body.get("properties") or {}), status_code=201)

    async def control_update(self, request: Request) -> Response:
        body = _object(await _json_body(request))
        return JSONResponse(
            self.ui_update(request.path_params["contact_id"], body.get("properties"))
        )

    async def control_delete(self, request: Request) -> Response:
        self.ui_delete(request.path_params["contact_id"])
        return Response(status_code=204)

    async def control_merge(self, request: Request) -> Response:
        body = _object(await _json_body(request))
        return JSONResponse(
            self.ui_merge(body.get("primaryObjectId", ""), body.get("objectIdToMerge", ""))
        )

    async def control_state(self, request: Request) -> Response:
        with self.store.lock:
            archived = sum(1 for c in self.store.contacts.values() if c.archived)
            total = len(self.store.contacts)
        return JSONResponse(
            {
                "contacts": total - archived,
                "archived": archived,
                "limits": self.limits.model_dump(),
                "webhooks": self.webhooks.outbox.stats(),
            }
        )

    async def control_limits(self, request: Request) -> Response:
        if request.method in ("PUT", "PATCH"):
            data = _object(await _json_body(request))
            base = {} if request.method == "PUT" else self.limits.model_dump()
            self.set_limits(HubSpotLimits.model_validate({**base, **data}))
        return JSONResponse(self.limits.model_dump())

    async def control_tokens(self, request: Request) -> Response:
        body = _object(await _json_body(request))
        value = body.get("token")
        if not isinstance(value, str) or not value:
            raise validation_error("token is required")
        ttl = body.get("expires_in")
        if ttl is None:
            token = self.tokens.add_private_app(value)
        else:
            token = self.tokens.add(Token(value, "oauth", time.time() + float(ttl)))
        return JSONResponse(
            {"token": token.value, "kind": token.kind, "expires_at": token.expires_at},
            status_code=201,
        )

    async def control_expire(self, request: Request) -> Response:
        raw = await request.body()
        body = _object(json.loads(raw)) if raw else {}
        return JSONResponse({"expired": self.tokens.expire(body.get("token"))})

    async def control_webhooks(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.webhooks.outbox.clear()
        elif request.method in ("PUT", "PATCH"):
            data = _object(await _json_body(request))
            if request.method == "PUT":
                data = {**HubSpotWebhookSettings().model_dump(), **data}
            self.webhooks.configure(**data)
        return JSONResponse(
            {
                "settings": self.webhooks.settings.model_dump(),
                "stats": self.webhooks.outbox.stats(),
                "attempts": [a.as_json() for a in self.webhooks.outbox.attempts()],
            }
        )

    def _control(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except HubSpotError as exc:
                return exc.response()
            except ValidationError as exc:
                return JSONResponse(
                    {"detail": json.loads(exc.json(include_url=False))}, status_code=422
                )

        return endpoint

    def _build(self) -> Starlette:
        api, ctl = self._api, self._control
        routes = [
            Route(CONTACTS, api(self.list_contacts), methods=["GET"]),
            Route(CONTACTS, api(self.create_contact), methods=["POST"]),
            Route(f"{CONTACTS}/search", api(self.search, search=True), methods=["POST"]),
            Route(f"{CONTACTS}/merge", api(self.merge_contacts), methods=["POST"]),
            Route(f"{CONTACTS}/batch/read", api(self.batch_read), methods=["POST"]),
            Route(f"{CONTACTS}/batch/create", api(self.batch_create), methods=["POST"]),
            Route(f"{CONTACTS}/batch/update", api(self.batch_update), methods=["POST"]),
            Route(f"{CONTACTS}/batch/upsert", api(self.batch_upsert), methods=["POST"]),
            Route(f"{CONTACTS}/batch/archive", api(self.batch_archive), methods=["POST"]),
            Route(CONTACTS + "/{contact_id}", api(self.get_contact), methods=["GET"]),
            Route(CONTACTS + "/{contact_id}", api(self.update_contact), methods=["PATCH"]),
            Route(CONTACTS + "/{contact_id}", api(self.archive_contact), methods=["DELETE"]),
            Route("/oauth/v1/token", self.oauth_token, methods=["POST"]),
            Route("/_sandbox/hubspot/contacts", ctl(self.control_create), methods=["POST"]),
            Route("/_sandbox/hubspot/contacts/merge", ctl(self.control_merge), methods=["POST"]),
            Route(
                "/_sandbox/hubspot/contacts/{contact_id}",
                ctl(self.control_update),
                methods=["PATCH"],
            ),
            Route(
                "/_sandbox/hubspot/contacts/{contact_id}",
                ctl(self.control_delete),
                methods=["DELETE"],
            ),
            Route("/_sandbox/hubspot/state", ctl(self.control_state), methods=["GET"]),
            Route(
                "/_sandbox/hubspot/limits",
                ctl(self.control_limits),
                methods=["GET", "PUT", "PATCH"],
            ),
            Route("/_sandbox/hubspot/tokens", ctl(self.control_tokens), methods=["POST"]),
            Route("/_sandbox/hubspot/tokens/expire", ctl(self.control_expire), methods=["POST"]),
            Route(
                "/_sandbox/hubspot/webhooks",
                ctl(self.control_webhooks),
                methods=["GET", "PUT", "PATCH", "DELETE"],
            ),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await self.webhooks.start()
            try:
                yield
            finally:
                await self.webhooks.stop()

        return Starlette(routes=routes, lifespan=lifespan)


__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "PRIVATE_APP_TOKEN",
    "REFRESH_TOKEN",
    "Contact",
    "ContactStore",
    "HubSpotError",
    "HubSpotLimits",
    "HubSpotSimulator",
    "HubSpotWebhookSettings",
    "HubSpotWebhooks",
    "SlidingWindow",
    "Token",
    "TokenRegistry",
    "sign_v1",
    "sign_v3",
]
