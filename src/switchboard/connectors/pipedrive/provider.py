"""Pipedrive as the hub sees it: a CRM of persons that syncs, with webhooks v1 and OAuth2."""

from __future__ import annotations

from typing import Any

import httpx

from switchboard.connectors.base import OAuthEndpoints, Provider
from switchboard.connectors.pipedrive import oauth
from switchboard.connectors.pipedrive.contacts import PipedriveContacts
from switchboard.connectors.pipedrive.ratelimit import read_rate_limit
from switchboard.connectors.pipedrive.settings import PipedriveConnection
from switchboard.connectors.pipedrive.sync import interval, summary, sync_persons
from switchboard.connectors.pipedrive.webhooks import receive_pipedrive
from switchboard.http import ConnectionClient, Limit, Mode, RateLimitHeaders, RateLimitReader
from switchboard.syncs import Syncer


def _contacts(http: ConnectionClient, conn: Any, mode: Mode) -> PipedriveContacts:
    assert isinstance(conn, PipedriveConnection)
    return PipedriveContacts(http, conn, mode=mode)


def _budget_headers(headers: httpx.Headers, now: float) -> RateLimitHeaders:
    """``x-ratelimit-*`` as the budget takes them: the announced limit per 2-second window."""
    read = read_rate_limit(headers)
    limit = Limit(read.capacity, read.window) if read.capacity and read.window else None
    return RateLimitHeaders(remaining=read.remaining, reset_in=read.reset_in, limit=limit)


def _reader(_conn: Any) -> RateLimitReader:
    return _budget_headers


PROVIDER = Provider(
    kind="pipedrive",
    settings=PipedriveConnection,
    crm=_contacts,
    syncer=Syncer(stream="contacts", run=sync_persons, interval=interval, summary=summary),
    receiver=receive_pipedrive,
    rate_limit_headers=_reader,
    oauth=OAuthEndpoints(
        token_path=oauth.TOKEN_URL,
        authorize_url=oauth.AUTHORIZE_URL,
        scopes=oauth.SCOPES,
        client_auth="basic",
    ),
)
