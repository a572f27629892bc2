"""Pipedrive as the hub sees it: a CRM of persons that syncs, with webhooks v1 and OAuth2."""

from __future__ import annotations

from typing import Any

from switchboard.connectors.base import OAuthEndpoints, Provider
from switchboard.connectors.pipedrive import oauth
from switchboard.connectors.pipedrive.contacts import PipedriveContacts
from switchboard.connectors.pipedrive.ratelimit import read_headers
from switchboard.connectors.pipedrive.settings import PipedriveConnection
from switchboard.connectors.pipedrive.sync import interval, sync_persons
from switchboard.connectors.pipedrive.webhooks import receive_pipedrive
from switchboard.contacts.sync import summary
from switchboard.http import ConnectionClient, Mode
from switchboard.syncs import Syncer


def _contacts(http: ConnectionClient, conn: Any, mode: Mode) -> PipedriveContacts:
    assert isinstance(conn, PipedriveConnection)
    return PipedriveContacts(http, conn, mode=mode)


PROVIDER = Provider(
    kind="pipedrive",
    settings=PipedriveConnection,
    crm=_contacts,
    syncer=Syncer(stream="contacts", run=sync_persons, interval=interval, summary=summary),
    receiver=receive_pipedrive,
    rate_limit_headers=lambda _conn: read_headers,
    oauth=OAuthEndpoints(
        token_path=oauth.TOKEN_URL,
        authorize_url=oauth.AUTHORIZE_URL,
        scopes=oauth.SCOPES,
        client_auth="basic",
        account=oauth.company_of,
        api_base=oauth.api_base_of,
    ),
)
