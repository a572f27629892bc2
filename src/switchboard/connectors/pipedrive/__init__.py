"""Pipedrive persons (API v1) as a CRM: settings, a thin typed client, pure mappings, the
``CrmContacts`` adapter, the persons sync, the webhooks v1 receiver, the rate-limit header reader,
the OAuth endpoints and a simulator. Not wired yet: the names below are what a registration
needs.

    contacts = PipedriveContacts(outbound.client("pipedrive"), conn, mode="job")
    client = PipedriveClient(outbound.client("pipedrive"), conn, mode="job")  # raw endpoints
"""

from switchboard.connectors.pipedrive.client import PipedriveClient
from switchboard.connectors.pipedrive.contacts import PipedriveContacts
from switchboard.connectors.pipedrive.mapping import from_person, to_person_body
from switchboard.connectors.pipedrive.oauth import (
    AUTHORIZE_URL,
    SCOPES,
    TOKEN_CLIENT_AUTH,
    TOKEN_URL,
)
from switchboard.connectors.pipedrive.ratelimit import RateLimitHeaders, read_rate_limit
from switchboard.connectors.pipedrive.settings import PipedriveConnection
from switchboard.connectors.pipedrive.simulator import PipedriveSimulator
from switchboard.connectors.pipedrive.sync import STREAM, interval, summary, sync_persons
from switchboard.connectors.pipedrive.webhooks import receive_pipedrive

KIND = "pipedrive"

__all__ = [
    "AUTHORIZE_URL",
    "KIND",
    "SCOPES",
    "STREAM",
    "TOKEN_CLIENT_AUTH",
    "TOKEN_URL",
    "PipedriveClient",
    "PipedriveConnection",
    "PipedriveContacts",
    "PipedriveSimulator",
    "RateLimitHeaders",
    "from_person",
    "interval",
    "read_rate_limit",
    "receive_pipedrive",
    "summary",
    "sync_persons",
    "to_person_body",
]
