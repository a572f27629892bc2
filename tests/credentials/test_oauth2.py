"""OAuth2 refresh against a fake token server, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from switchboard.config import Settings
from switchboard.credentials import NeedsReauthorization, load_secret_box
from switchboard.db import Database
from switchboard.http import ProviderRejected
from switchboard.http.testing import FakeClock
from tests.credentials.fakes import INITIAL_REFRESH, OAuthServer, oauth_connection
from tests.http.fakes import Outbounds

Serve = Callable[[Any], str]
PATH = "/crm/v3/objects/contacts"


async def test_100_concurrent_callers_in_two_processes_cause_one_refresh(
    asgi_server: Serve, outbounds: Outbounds, db: Database
) -> None:
    server = OAuthServer(delay=0.2)
    conns = oauth_connection(asgi_server(server.app))
    first = outbounds.make(conns, db).client("crm")
    second = outbounds.make(conns, outbounds.database()).client("crm")

    responses = await asyncio.gather(
        *(client.request("GET", PATH) for client in [first, second] * 50)
    )

    assert all(r.json()["token_ok"] for r in responses)
    assert len(server.refreshes) == 1
    assert server.refreshes[0]["refresh_token"] == INITIAL_REFRESH


async def test_rotated_refresh_token_is_stored_encrypted_and_used_next(
    asgi_server: Serve, outbounds: Outbounds, db: Database, settings: Settings
) -> None:
    server = OAuthServer()
    conns = oauth_connection(asgi_server(server.app))
    crm = outbounds.make(conns, db).client("crm")

    await crm.request("GET", PATH)

    async with db.read_session() as session:
        row = (
            await session.execute(text("SELECT refresh_token, access_token FROM credentials"))
        ).one()
    assert "rt-1" not in row.refresh_token and "at-1" not in row.access_token
    assert INITIAL_REFRESH not in row.refresh_token
    box = load_secret_box(settings)
    assert box.decrypt(row.refresh_token) == "rt-1-e5f6a7b8"
    assert box.decrypt(row.access_token) == "at-1-a1b2c3d4"

    # Another process reads the stored access token instead of refreshing ...
    other = outbounds.make(conns, outbounds.database()).client("crm")
    assert (await other.request("GET", PATH)).json()["token_ok"]
    assert len(server.refreshes) == 1
    # ... and when it expires, refreshes with the rotated refresh token from the database.
    server.expire()
    assert (await other.request("GET", PATH)).json()["token_ok"]
    assert [r["refresh_token"] for r in server.refreshes] == [INITIAL_REFRESH, "rt-1-e5f6a7b8"]


async def test_expired_authentication_refreshes_once_and_retries_once(
    asgi_server: Serve, outbounds: Outbounds, db: Database
) -> None:
    server = OAuthServer()
    crm = outbounds.make(oauth_connection(asgi_server(server.app)), db).client("crm")
    await crm.request("GET", PATH)
    calls_before = server.resource_calls

    server.expire()  # the provider says EXPIRED_AUTHENTICATION for the token we hold
    r = await crm.request("GET", PATH)

    assert r.json()["token_ok"]
    assert len(server.refreshes) == 2
    assert server.resource_calls == calls_before + 2

    server.always_401 = True  # a refresh does not help: one refresh, one retry, then fail
    with pytest.raises(ProviderRejected) as caught:
        await crm.request("GET", PATH)
    assert caught.value.provider_status == 401
    assert len(server.refreshes) == 3
    assert server.resource_calls == calls_before + 4


async def test_invalid_refresh_token_marks_the_connection_and_stops_retrying(
    asgi_server: Serve, outbounds: Outbounds, db: Database
) -> None:
    server = OAuthServer()
    server.revoke_all()
    base_url = asgi_server(server.app)
    conns = oauth_connection(base_url)
    outbound = outbounds.make(conns, db)
    crm = outbound.client("crm")

    with pytest.raises(NeedsReauthorization, match="re-authoris"):
        await crm.request("GET", PATH)

    status = await outbound.status("crm")
    assert status.credentials is not None
    assert status.credentials.state == "needs_reauth"
    assert status.credentials.detail and "refresh token" in status.credentials.detail
    with pytest.raises(NeedsReauthorization):
        await crm.request("GET", PATH)
    other = outbounds.make(conns, outbounds.database())
    with pytest.raises(NeedsReauthorization):
        await other.client("crm").request("GET", PATH)
    assert len(server.refreshes) == 1  # never retried, in any process
    assert server.resource_calls == 0

    # The operator re-authorises: a new refresh token in the connections file starts over.
    server.valid_refresh = {"rt-new-99887766"}
    fixed = outbounds.make(oauth_connection(base_url, "rt-new-99887766"), db)
    assert (await fixed.client("crm").request("GET", PATH)).json()["token_ok"]
    state = (await fixed.status("crm")).credentials
    assert state is not None and state.state == "ok"


async def test_refreshes_ahead_of_expiry(
    asgi_server: Serve, outbounds: Outbounds, db: Database
) -> None:
    server = OAuthServer(expires_in=1800)
    clock = FakeClock()
    crm = outbounds.make(oauth_connection(asgi_server(server.app)), db, clock=clock).client("crm")
    await crm.request("GET", PATH)

    clock.advance(1400)
    await crm.request("GET", PATH)
    assert len(server.refreshes) == 1

    clock.advance(150)  # 5 minutes before expiry: refreshed before the provider refuses it
    await crm.request("GET", PATH)
    assert len(server.refreshes) == 2
    assert server.resource_calls == 3  # no 401 was needed
