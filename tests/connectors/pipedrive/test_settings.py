"""``PipedriveConnection``: validated as the connections file will give it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from switchboard.config import OAuth2Auth
from switchboard.connectors.pipedrive.oauth import TOKEN_URL, api_base_of
from switchboard.connectors.pipedrive.settings import PipedriveConnection


def parse(**values: Any) -> PipedriveConnection:
    return PipedriveConnection.model_validate({"kind": "pipedrive", **values})


def test_an_api_token_connection_with_defaults() -> None:
    conn = parse(api_token="tok-7f3a", sync_interval="10m", rate_limit="80/2s")
    assert conn.base_url == "https://api.pipedrive.com"
    assert conn.sync_interval == timedelta(minutes=10)
    assert conn.rate_limit is not None and conn.rate_limit.requests == 80
    assert conn.page_size == 500 and conn.webhook_user is None
    assert "tok-7f3a" not in repr(conn)  # secrets stay masked


def test_oauth_defaults_to_pipedrives_token_host() -> None:
    auth = {"type": "oauth2", "client_id": "c", "client_secret": "s", "refresh_token": "r"}
    conn = parse(auth=auth, base_url="https://acme.pipedrive.com/api")
    assert isinstance(conn.auth, OAuth2Auth) and conn.auth.token_url == TOKEN_URL
    own = parse(auth={**auth, "token_url": "http://127.0.0.1:1/oauth/token"})
    assert (
        isinstance(own.auth, OAuth2Auth) and own.auth.token_url == "http://127.0.0.1:1/oauth/token"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "exactly one of api_token and auth"),
        ({"api_token": "t", "auth": {"type": "token", "token": "x"}}, "exactly one"),
        ({"api_token": "t", "webhook_user": "u"}, "webhook_user and webhook_password"),
        ({"api_token": "t", "page_size": 501}, "page_size"),
        ({"api_token": "t", "colour": "red"}, "colour"),
    ],
)
def test_invalid_connections_name_the_problem(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(**values)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("api_domain", "base"),
    [
        ("https://acme.pipedrive.com", "https://acme.pipedrive.com/api"),
        ("https://acme.pipedrive.com/", "https://acme.pipedrive.com/api"),
        ("https://user:pw@evil.example", None),  # no credentials in a host
        ("https://acme.pipedrive.com/v1?x=1", None),  # a host, not a path or a query
        ("javascript:alert(1)", None),
        (None, None),
        (42, None),
    ],
)
def test_the_company_api_host_comes_from_a_token_answers_api_domain(
    api_domain: object, base: str | None
) -> None:
    token = {"access_token": "a"} if api_domain is None else {"api_domain": api_domain}
    assert api_base_of(token) == base
