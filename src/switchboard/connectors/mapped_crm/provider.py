"""The declarative mapped CRM as the hub sees it: a CRM whose contacts sync, with webhooks."""

from __future__ import annotations

from typing import Any

from switchboard.connectors.base import Provider
from switchboard.connectors.mapped_crm import sync, webhooks
from switchboard.connectors.mapped_crm.client import MappedCrmContacts
from switchboard.connectors.mapped_crm.ratelimit import budget_reader
from switchboard.connectors.mapped_crm.settings import MappedCrmConnection
from switchboard.contacts.sync import summary
from switchboard.http import ConnectionClient, Mode
from switchboard.syncs import Syncer


def _contacts(http: ConnectionClient, conn: Any, mode: Mode) -> MappedCrmContacts:
    assert isinstance(conn, MappedCrmConnection)
    return MappedCrmContacts(http, conn, mode=mode)


PROVIDER = Provider(
    kind="mapped_crm",
    settings=MappedCrmConnection,
    crm=_contacts,
    syncer=Syncer(stream="contacts", run=sync.sync, interval=sync.interval, summary=summary),
    receiver=webhooks.receive,
    rate_limit_headers=budget_reader,
)
