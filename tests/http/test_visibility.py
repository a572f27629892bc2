"""Breaker and credential state in /ready and /metrics (and GET /connections)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from switchboard.config import HubConfig
from switchboard.credentials import NeedsReauthorization
from switchboard.http import ProviderUnavailable, RetryPolicy
from tests.credentials.fakes import OAuthServer, oauth_connection
from tests.http.fakes import hub

Serve = Callable[[Any], str]


@pytest.fixture
def oauth_server() -> OAuthServer:
    server = OAuthServer()
    server.revoke_all()
    return server


@pytest.fixture
def hub_config(asgi_server: Serve, oauth_server: OAuthServer) -> HubConfig:
    conns = oauth_connection(asgi_server(oauth_server.app))
    conns["static"] = {
        "kind": "hubspot",
        "base_url": "http://127.0.0.1:9",  # nothing listens: every call is a transport error
        "auth": {"type": "token", "token": "pat-0000000"},
    }
    conns["todo"] = {"kind": "todo_webhooks"}
    return hub(conns)


async def test_ready_reports_breaker_and_credentials_without_failing(
    app: FastAPI, client: httpx.AsyncClient, oauth_server: OAuthServer
) -> None:
    with pytest.raises(NeedsReauthorization):
        await app.state.outbound.client("crm").request("GET", "/crm/v3/objects/contacts")
    static = app.state.outbound.client("static")
    static.breaker.failure_threshold, static.policy = 1, RetryPolicy(max_attempts=1)
    with pytest.raises(ProviderUnavailable):
        await static.request("GET", "/x")

    ready = await client.get("/ready")

    assert ready.status_code == 200  # reported, not failing: reads are served locally
    assert ready.json()["checks"]["connections"] == {
        "crm": {"breaker": "closed", "credentials": "needs_reauth"},
        "static": {"breaker": "open", "credentials": "ok"},
    }
    assert len(oauth_server.refreshes) == 1
    metrics = (await client.get("/metrics")).text
    assert 'switchboard_outbound_breaker_state{connection="static"} 2.0' in metrics
    assert 'switchboard_outbound_requests_total{connection="static",status="error"}' in metrics


async def test_connections_show_breaker_budget_and_credentials(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    before = (await client.get("/connections/crm")).json()
    assert before["outbound"] == {
        "breaker": "closed",
        "consecutive_failures": 0,
        "budgets": {},
        "credentials": {"type": "oauth2", "state": "unused", "detail": None, "expires_at": None},
    }
    with pytest.raises(NeedsReauthorization):
        await app.state.outbound.client("crm").request("GET", "/crm/v3/objects/contacts")

    one = (await client.get("/connections/crm")).json()
    assert one["outbound"]["credentials"]["state"] == "needs_reauth"
    assert "refresh token" in one["outbound"]["credentials"]["detail"]
    items = {
        i["name"]: i
        for i in (await client.get("/connections", params={"detail": "true"})).json()["items"]
    }
    assert items["crm"]["outbound"]["credentials"]["state"] == "needs_reauth"
    assert items["static"]["outbound"]["credentials"] == {
        "type": "token",
        "state": "ok",
        "detail": None,
        "expires_at": None,
    }
    assert items["todo"]["outbound"] is None  # inbound only
    assert "pat-0000000" not in str(items)
