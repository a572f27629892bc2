"""No secret reaches the logs: the real log pipeline (logs.configure_logging, JSON on stderr) is
captured while every credential flow runs, including failures and their error messages."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from switchboard.credentials import NeedsReauthorization
from switchboard.db import Database
from switchboard.errors import AppError
from switchboard.http.testing import FakeClock
from switchboard.logs import configure_logging
from tests.credentials import test_client_credentials as acme_test
from tests.credentials import test_nango as nango_test
from tests.credentials.fakes import CLIENT_SECRET, INITIAL_REFRESH, OAuthServer, oauth_connection
from tests.http.fakes import Outbounds
from tests.support import Backend, make_settings

Serve = Callable[[Any], str]


@pytest.fixture
def log_output(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> Iterator[Callable[[], str]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    settings = make_settings(
        Backend("sqlite+aiosqlite:///unused", None), tmp_path, log_level="debug"
    )
    configure_logging(settings)  # binds to the captured stderr
    yield lambda: capsys.readouterr().err
    structlog.reset_defaults()
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


async def test_tokens_and_secrets_never_appear_in_logs(
    asgi_server: Serve,
    outbounds: Outbounds,
    local: Outbounds,
    db: Database,
    log_output: Callable[[], str],
) -> None:
    log = structlog.get_logger("test")

    def report(exc: AppError) -> None:  # what a job worker or an error handler would log
        log.error("call_failed", error=str(exc), detail=getattr(exc, "provider_body", None))

    oauth = OAuthServer()
    oauth_url = asgi_server(oauth.app)
    crm = outbounds.make(oauth_connection(oauth_url), db).client("crm")
    await crm.request("GET", "/crm/v3/objects/contacts")
    oauth.expire()
    await crm.request("GET", "/crm/v3/objects/contacts")  # 401 -> refresh -> retry
    oauth.revoke_all()
    revoked = outbounds.make(oauth_connection(oauth_url, "rt-revoked-11223344"), db)
    with pytest.raises(NeedsReauthorization) as caught:
        await revoked.client("crm").request("GET", "/crm/v3/objects/contacts")
    report(caught.value)

    clock = FakeClock()
    nango = nango_test.Nango(clock)
    nango_url = asgi_server(nango.app)
    await (
        local.make(nango_test.nango_conn(nango_url), None)
        .client("crm")
        .request("GET", "/crm/v3/objects/contacts")
    )
    wrong = local.make(nango_test.nango_conn(nango_url, "nango-sk-wrong-998877"), None)
    with pytest.raises(AppError) as failed:
        await wrong.client("crm").request("GET", "/crm/v3/objects/contacts")
    report(failed.value)

    acme = acme_test.Acme(clock)
    acme_url = asgi_server(acme.app)
    await (
        local.make(acme_test.acme_conn(acme_url), None)
        .client("acme")
        .request("GET", "/v1/acme/contacts")
    )

    output = log_output()
    assert "credentials_refreshed" in output
    assert "credentials_need_reauthorisation" in output
    assert "call_failed" in output
    secrets = [
        CLIENT_SECRET,
        INITIAL_REFRESH,
        "rt-revoked-11223344",
        *{f"rt-{n}-e5f6a7b8" for n in range(1, 5)},
        *{f"at-{n}-a1b2c3d4" for n in range(1, 5)},
        nango_test.SECRET_KEY,
        "nango-sk-wrong-998877",
        "nango-at-1-xyz789",
        acme_test.CLIENT_SECRET,
        *acme.tokens,
    ]
    leaked = [s for s in secrets if s in output]
    assert leaked == []
