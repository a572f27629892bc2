"""HubSpot as the hub sees it: a CRM whose contacts sync, with webhooks and OAuth2."""

from __future__ import annotations

from typing import Any

from switchboard.connectors.base import OAuthEndpoints, Provider
from switchboard.connectors.hubspot import sync, webhooks
from switchboard.connectors.hubspot.contacts import HubSpotContacts
from switchboard.connectors.hubspot.oauth import portal_of
from switchboard.connectors.hubspot.ratelimit import read_headers
from switchboard.connectors.hubspot.settings import HubSpotConnection
from switchboard.contacts.sync import summary
from switchboard.http import ConnectionClient, Mode
from switchboard.syncs import Syncer


def _contacts(http: ConnectionClient, conn: Any, mode: Mode) -> HubSpotContacts:
    assert isinstance(conn, HubSpotConnection)
    return HubSpotContacts(http, conn, mode=mode)


PROVIDER = Provider(
    kind="hubspot",
    settings=HubSpotConnection,
    crm=_contacts,
    syncer=Syncer(stream="contacts", run=sync.sync, interval=sync.interval, summary=summary),
    receiver=webhooks.receive,
    app_receiver=webhooks.receive_for_app,
    rate_limit_headers=lambda _conn: read_headers,
    oauth=OAuthEndpoints(
        token_path="/oauth/v1/token",  # noqa: S106 - an endpoint, not a secret
        authorize_url="https://app.hubspot.com/oauth/authorize",
        scopes=("crm.objects.contacts.read", "crm.objects.contacts.write"),
        account=portal_of,
    ),
)
