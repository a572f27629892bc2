"""The CRM contacts interface every CRM connector implements, in the hub's own field names.

    crm = crm_client(outbound, config, "hubspot", mode="request")
    contact = await crm.create({"email": "ada@example.com", "firstName": "Ada"})
    await crm.update(contact.external_id, {"lastName": "Lovelace"})

Each CRM provider implements it (``Provider.crm`` builds its client). Our field names are
:data:`FIELDS` plus the connection's custom fields (``custom_fields``,
:mod:`switchboard.connectors.fields`), side by side in one :data:`Fields` dict; each connector
maps them to the provider's and back, and refuses a field its map does not know
(:class:`UnknownField`, 422) rather than writing it under a wrong name.

Failures: :class:`DuplicateContact` (409), :class:`ContactNotFound` (404),
:class:`UnknownField` / :class:`InvalidContact` (422), :class:`MalformedResponse` (502), and the
outbound layer's ``TransientError`` (503 + Retry-After: rate limit, outage) and
``TerminalError`` (502) for the rest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from switchboard.connectors.fields import FIELDS as FIELDS  # re-exported: the standard fields
from switchboard.errors import Conflict, NotFound, RetryLater, TerminalError, Unprocessable
from switchboard.http import ProviderRejected

if TYPE_CHECKING:
    import httpx

    from switchboard.config import Config
    from switchboard.http import Outbound

Fields = dict[str, str | None]
"""Field values by our name: standard fields and the connection's custom ones (whose names are
never standard ones); ``None`` is empty."""


@dataclass(frozen=True)
class CrmContact:
    """A contact as a CRM holds it, in our field names.

    ``fields`` holds the fields the CRM returned (a write's answer may hold only the fields
    written; a missing key means "not returned", ``None`` means "empty").
    """

    external_id: str
    fields: Fields
    created_at: datetime | None
    updated_at: datetime | None
    archived: bool
    raw: dict[str, Any]
    """The provider's record as received."""


class DuplicateContact(TerminalError, Conflict):
    """A contact with this email already exists in the CRM."""

    status_code = 409

    def __init__(
        self,
        message: str | None = None,
        *,
        existing_id: str | None,
        existing: CrmContact | None = None,
        **kw: Any,
    ):
        super().__init__(message, **kw)
        self.existing_id = existing_id
        self.existing = existing
        """The existing contact when the connector already read it (saves a ``get``)."""


class ContactNotFound(TerminalError, NotFound):
    """The contact does not exist in the CRM."""

    status_code = 404


class UnknownField(Unprocessable):
    """The CRM's field map does not know this field."""

    error_type = "extra_forbidden"

    def __init__(self, field: str, connection: str) -> None:
        # A custom field is sent inside the body's ``fields`` object.
        loc = ("body", field) if field in FIELDS else ("body", "fields", field)
        super().__init__(f"Field {field!r} is not mapped for connection {connection!r}", loc=loc)
        self.field = field
        self.connection = connection


class InvalidContact(TerminalError):
    """The CRM rejected the contact's values."""

    status_code = 422
    error_type = "crm_rejected"


class MalformedResponse(TerminalError):
    """The CRM answered something that is not the documented shape."""

    status_code = 502


PAUSED_RETRY = 60.0
"""How often a job for a paused connection looks again (its deadline still bounds it).
Resuming the connection wakes its waiting jobs at once (:func:`paused_reason`)."""


def paused_reason(connection_id: str) -> str:
    """The reason a job waiting for paused connection ``connection_id`` records: resuming the
    connection brings the jobs waiting with it forward (``jobs.queue.wake``)."""
    return f"connection {connection_id!r} is paused"


class ConnectionPaused(Conflict):
    """The connection is paused: nothing is sent to its provider."""


class NotACrm(Unprocessable):
    """No CRM connection of that name."""

    loc = ("body", "connection")


@dataclass(frozen=True)
class ContactWrite:
    """One contact of a batch write (:meth:`CrmContacts.write_many`)."""

    email: str
    """The contact's email: how a contact whose id is unknown is found (or created)."""
    fields: Fields
    """What the contact should hold; ``None`` clears a field."""
    contact_id: str | None = None
    """The CRM's id, when known: the contact is updated by id (so an email change updates the
    same contact)."""
    known: Fields | None = None
    """What the CRM was last given: only the fields that differ from it are sent."""

    def changes(self, known: Fields | None = None) -> Fields:
        """The fields to send, given what the CRM holds (``known``, else :attr:`known`)."""
        base = self.known if known is None else known
        if base is None:  # nothing given yet: send every field with a value
            return {k: v for k, v in self.fields.items() if v is not None}
        return {k: v for k, v in self.fields.items() if base.get(k) != v}


WriteResult = CrmContact | Exception
"""Per input of a batch write: the contact as written, or that input's own failure (a CRM
refusal, or a transient error of its own call when the CRM has no batch endpoint)."""


class CrmContacts(Protocol):
    """Contacts in one CRM. Every method may also raise the outbound layer's errors."""

    connection: str

    async def get(self, external_id: str) -> CrmContact | None:
        """The contact, or ``None`` when the CRM does not know it (or it was deleted)."""
        ...

    async def find_by_email(self, email: str) -> CrmContact | None:
        """The live contact with this email (case-insensitive), or ``None``."""
        ...

    async def create(self, fields: Fields) -> CrmContact:
        """Create a contact; :class:`DuplicateContact` when the email is taken."""
        ...

    async def update(self, external_id: str, fields: Fields) -> CrmContact:
        """Set the given fields (``None`` clears one); :class:`ContactNotFound` when unknown.
        The answer may hold only the fields written."""
        ...

    async def archive(self, external_id: str) -> None:
        """Delete (archive) the contact. Idempotent: deleting an unknown contact succeeds."""
        ...

    async def read_many(self, external_ids: Sequence[str]) -> dict[str, CrmContact]:
        """The live contacts among ``external_ids``, by id (unknown or deleted ones left out)."""
        ...

    async def write_many(
        self, writes: Sequence[ContactWrite], *, create_missing: bool
    ) -> list[WriteResult]:
        """Bring each contact to its ``fields``, in as few provider calls as the CRM allows; one
        result per write, in order. A contact whose id is unknown is found by email (and
        created when ``create_missing``, else :class:`ContactNotFound`); a duplicate email
        resolves to the existing contact. A failure of the whole call (rate limit, outage)
        raises: every write is then to be retried."""
        ...

    @property
    def calls(self) -> int:
        """Provider requests this client has made (for calls-per-change metrics)."""
        ...


@runtime_checkable
class KeepsArchive(Protocol):
    """A CRM that keeps deleted contacts readable (archived) for a while."""

    async def get_archived(self, external_id: str) -> CrmContact | None:
        """The contact if the CRM holds it archived (its ``updated_at``: when archived)."""
        ...


def crm_client(
    outbound: Outbound, config: Config, name: str, *, mode: Literal["request", "job"]
) -> CrmContacts:
    """The contacts client of CRM connection ``name`` (:class:`NotACrm` otherwise).

    ``mode="request"`` bounds retry waits for an API caller (then 503 + Retry-After);
    ``mode="job"`` lets long waits become ``RetryLater``."""
    entry = config.entry(name)
    if entry is None or entry.provider.crm is None:
        raise NotACrm(f"No CRM connection named {name!r}")
    if not entry.active:  # paused: its work waits (a job) or is refused (a request)
        if mode == "job":
            raise RetryLater(PAUSED_RETRY, reason=paused_reason(entry.id))
        raise ConnectionPaused(f"Connection {name!r} is paused")
    return entry.provider.crm(outbound.client(entry.id), entry.settings, mode)


def json_body(response: httpx.Response, connection: str) -> Any:
    """The decoded JSON body of a successful answer; :class:`MalformedResponse` otherwise."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedResponse(
            f"{connection}: the CRM answered {response.status_code} with a body that is not JSON",
            connection=connection,
            provider_status=response.status_code,
            body=response.text[:500],
        ) from None


def malformed(connection: str, what: str, body: Any = None) -> MalformedResponse:
    return MalformedResponse(f"{connection}: {what}", connection=connection, body=body)


@contextmanager
def crm_errors(
    connection: str, *, existing_id: Callable[[str | None], str | None] = lambda _: None
) -> Iterator[None]:
    """A CRM's refusals (``ProviderRejected``) as the errors callers act on: 409 →
    :class:`DuplicateContact` (``existing_id`` reads the id from the provider's message when it
    names one), 404 → :class:`ContactNotFound`, 400/422 → :class:`InvalidContact`."""
    try:
        yield
    except ProviderRejected as exc:
        context: dict[str, Any] = {
            "connection": connection,
            "provider_status": exc.provider_status,
            "provider_message": exc.provider_message,
            "body": exc.provider_body,
        }
        if exc.provider_status == 409:
            raise DuplicateContact(
                f"A contact with this email already exists in {connection}",
                existing_id=existing_id(exc.provider_message),
                **context,
            ) from None
        if exc.provider_status == 404:
            raise ContactNotFound(f"Contact not found in {connection}", **context) from None
        if exc.provider_status in (400, 422):
            detail = exc.provider_message or exc.message
            raise InvalidContact(
                f"{connection} rejected the contact: {detail}", **context
            ) from None
        raise


async def refuse_duplicate(crm: CrmContacts, fields: Fields) -> None:
    """:class:`DuplicateContact` when a live contact already has ``fields``' email: for CRMs that
    accept a second record with one email, before a create (HubSpot refuses on its own). The
    look and the create are two calls: two creates racing each other can still both succeed."""
    email = fields.get("email")
    existing = await crm.find_by_email(email) if email else None
    if existing is not None:
        raise DuplicateContact(
            f"A contact with this email already exists in {crm.connection}",
            existing_id=existing.external_id,
            existing=existing,
            connection=crm.connection,
        )


async def write_one(crm: CrmContacts, write: ContactWrite, *, create_missing: bool) -> CrmContact:
    """One contact write with single-contact endpoints: find by email when the id is unknown,
    create when missing (``create_missing``), send only the changed fields."""
    contact_id, known = write.contact_id, write.known
    current: CrmContact | None = None
    if contact_id is None:
        current = await crm.find_by_email(write.email)
        if current is not None:
            contact_id, known = current.external_id, current.fields
        elif create_missing:
            try:
                return await crm.create(write.changes({}))
            except DuplicateContact as exc:  # created by someone else since the lookup
                if exc.existing_id is None:
                    raise
                contact_id, known = exc.existing_id, {}
        else:
            raise ContactNotFound(
                f"no contact in {crm.connection} has the email {write.email} "
                "and create_missing is off",
                connection=crm.connection,
            )
    changes = write.changes(known)
    if not changes:
        return current or CrmContact(contact_id, dict(write.fields), None, None, False, {})
    try:
        return await crm.update(contact_id, changes)
    except ContactNotFound:
        if not create_missing:
            raise
        # The remembered contact was deleted in the CRM: create it again.
        return await crm.create(write.changes({}))


async def write_each(
    crm: CrmContacts, writes: Sequence[ContactWrite], *, create_missing: bool, concurrency: int
) -> list[WriteResult]:
    """:meth:`CrmContacts.write_many` for a CRM without batch endpoints: one
    :func:`write_one` per contact, at most ``concurrency`` at once, each failing alone."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(write: ContactWrite) -> WriteResult:
        async with gate:
            try:
                return await write_one(crm, write, create_missing=create_missing)
            except Exception as exc:  # the write's own outcome, returned to its own job
                return exc

    return list(await asyncio.gather(*(one(w) for w in writes)))


async def read_each(
    crm: CrmContacts, external_ids: Sequence[str], *, concurrency: int
) -> dict[str, CrmContact]:
    """:meth:`CrmContacts.read_many` for a CRM without a batch read."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(external_id: str) -> CrmContact | None:
        async with gate:
            return await crm.get(external_id)

    found = await asyncio.gather(*(one(i) for i in dict.fromkeys(external_ids)))
    return {c.external_id: c for c in found if c is not None}
