"""Pipedrive persons behind the hub's :class:`~switchboard.connectors.crm.CrmContacts`.

Pipedrive has no batch endpoints for persons: batches are one call per person, a few at once
(:data:`CONCURRENCY`). It does not refuse a second person with an email already in use, so
:meth:`PipedriveContacts.create` looks the email up first and raises ``DuplicateContact`` (409)
as the other CRMs do; the look and the create are two calls, and Pipedrive's search index trails
writes by a moment, so two creates of one email racing each other can still both succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from switchboard.connectors.crm import (
    ContactNotFound,
    ContactWrite,
    CrmContact,
    CrmContacts,
    Fields,
    WriteResult,
    read_each,
    refuse_duplicate,
    write_each,
)
from switchboard.connectors.pipedrive.client import PipedriveClient
from switchboard.connectors.pipedrive.mapping import (
    check_writable,
    from_person,
    needs_current,
    to_person_body,
)
from switchboard.connectors.pipedrive.settings import PipedriveConnection
from switchboard.http import ConnectionClient, Mode

CONCURRENCY = 4
"""Calls at once of one batch."""


class PipedriveContacts:
    def __init__(self, http: ConnectionClient, conn: PipedriveConnection, *, mode: Mode) -> None:
        self.client = PipedriveClient(http, conn, mode=mode)
        self.connection = http.name
        self.custom = dict(conn.custom_fields)

    @property
    def calls(self) -> int:
        return self.client.calls

    async def get(self, external_id: str) -> CrmContact | None:
        person = await self.client.get(person_id=external_id)
        if person is None or person.get("active_flag") is False:
            return None
        return from_person(person, self.connection, self.custom)

    async def get_archived(self, external_id: str) -> CrmContact | None:
        """The person if Pipedrive still holds it deleted (``update_time`` is when): the same
        method as HubSpot's adapter, for the refresh job's "gone" path."""
        person = await self.client.get(person_id=external_id)
        if person is None or person.get("active_flag") is not False:
            return None
        return from_person(person, self.connection, self.custom)

    async def find_by_email(self, email: str) -> CrmContact | None:
        """Search on the email field (exact match), then read the lowest-id match whole: a
        search item carries neither the name parts nor the times."""
        wanted = email.strip().lower()
        if not wanted:
            return None
        start: int | None = 0
        ids: list[int] = []
        while start is not None:
            items, start = await self.client.search(term=wanted, start=start)
            for item in items:
                emails: list[Any] = item["emails"] if isinstance(item.get("emails"), list) else []
                person_id = item.get("id")
                if (
                    isinstance(person_id, int)
                    and not isinstance(person_id, bool)
                    and any(isinstance(e, str) and e.strip().lower() == wanted for e in emails)
                ):
                    ids.append(person_id)
        for person_id in sorted(set(ids)):
            contact = await self.get(str(person_id))
            if contact is not None:
                return contact
        return None

    async def create(self, fields: Fields) -> CrmContact:
        body = to_person_body(
            fields, self.connection, create=True, custom=self.custom
        )  # refusals before requests
        await refuse_duplicate(self, fields)
        return from_person(await self.client.create(body=body), self.connection, self.custom)

    async def update(self, external_id: str, fields: Fields) -> CrmContact:
        check_writable(fields, self.connection, self.custom)  # refusals before any request
        current = None
        if needs_current(fields):
            current = await self.client.get(person_id=external_id)
            if current is None or current.get("active_flag") is False:
                raise ContactNotFound(
                    f"Contact not found in {self.connection}", connection=self.connection
                )
        body = to_person_body(fields, self.connection, current, custom=self.custom)
        if not body and current is not None:
            return from_person(current, self.connection, self.custom)
        person = await self.client.update(person_id=external_id, body=body)
        return from_person(person, self.connection, self.custom)

    async def archive(self, external_id: str) -> None:
        await self.client.delete(person_id=external_id)

    async def read_many(self, external_ids: Sequence[str]) -> dict[str, CrmContact]:
        return await read_each(self, external_ids, concurrency=CONCURRENCY)

    async def write_many(
        self, writes: Sequence[ContactWrite], *, create_missing: bool
    ) -> list[WriteResult]:
        return await write_each(
            self, writes, create_missing=create_missing, concurrency=CONCURRENCY
        )


if TYPE_CHECKING:  # mypy proves the adapter implements the hub's CRM interface
    _crm: type[CrmContacts] = PipedriveContacts
