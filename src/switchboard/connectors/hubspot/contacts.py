"""HubSpot contacts behind the hub's :class:`~switchboard.connectors.crm.CrmContacts`."""

from __future__ import annotations

from switchboard.config import HubSpotConnection
from switchboard.connectors.crm import CrmContact, Fields
from switchboard.connectors.hubspot.client import HubSpotClient
from switchboard.connectors.hubspot.mapping import from_record, to_properties
from switchboard.http import ConnectionClient, Mode


class HubSpotContacts:
    """Reads ask for the connection's configured ``properties``."""

    def __init__(self, http: ConnectionClient, conn: HubSpotConnection, *, mode: Mode) -> None:
        self.client = HubSpotClient(http, mode=mode)
        self.connection = http.name
        self.properties = list(conn.properties)

    async def get(self, external_id: str) -> CrmContact | None:
        record = await self.client.get(contact_id=external_id, properties=self.properties)
        return None if record is None else from_record(record, self.connection)

    async def get_archived(self, external_id: str) -> CrmContact | None:
        """The contact if HubSpot holds it archived (``archivedAt`` is its ``updated_at``)."""
        record = await self.client.get(
            contact_id=external_id, properties=self.properties, archived=True
        )
        return None if record is None else from_record(record, self.connection)

    async def find_by_email(self, email: str) -> CrmContact | None:
        record = await self.client.get_by_email(email=email, properties=self.properties)
        return None if record is None else from_record(record, self.connection)

    async def create(self, fields: Fields) -> CrmContact:
        properties = to_properties(fields, self.connection)
        return from_record(await self.client.create(properties=properties), self.connection)

    async def update(self, external_id: str, fields: Fields) -> CrmContact:
        properties = to_properties(fields, self.connection)
        record = await self.client.update(contact_id=external_id, properties=properties)
        return from_record(record, self.connection)

    async def archive(self, external_id: str) -> None:
        await self.client.archive(contact_id=external_id)
