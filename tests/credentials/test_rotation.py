"""Secret key rotation: an earlier key keeps decrypting (and matching fingerprints) while the new
one encrypts; ``rekey`` moves every stored credential to the new key, after which the old key
can go."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from switchboard.config import Config, HubConfig, Settings
from switchboard.credentials import SecretBox, SecretKeyError, load_secret_box, rekey
from switchboard.db import Database
from tests.credentials.fakes import INITIAL_REFRESH, OAuthServer, oauth_connection
from tests.http.fakes import Outbounds
from tests.support import SWITCHBOARD, Backend, switchboard_env

Serve = Callable[[Any], str]
PATH = "/crm/v3/objects/contacts"


def test_an_earlier_key_decrypts_and_matches_but_never_encrypts() -> None:
    old = SecretBox("old key")
    sealed = old.encrypt("rt-secret")
    both = SecretBox("new key", ["old key"])
    assert both.decrypt(sealed) == "rt-secret"
    assert old.fingerprint("rt-secret") in both.fingerprints("rt-secret")
    assert both.fingerprint("rt-secret") == SecretBox("new key").fingerprint("rt-secret")
    assert SecretBox("new key").decrypt(both.encrypt("x")) == "x"  # encrypts with the new key
    with pytest.raises(SecretKeyError):
        SecretBox("new key").decrypt(sealed)
    assert SecretBox("new key").decrypt(both.rotate(sealed)) == "rt-secret"


def keyed(settings: Settings, key: str, *previous: str) -> Settings:
    return settings.model_copy(
        update={
            "secret_key": SecretStr(key),
            "secret_key_previous": [SecretStr(p) for p in previous],
        }
    )


async def test_a_rotation_keeps_the_stored_tokens_and_rekey_moves_them(
    asgi_server: Serve, db: Database, settings: Settings
) -> None:
    server = OAuthServer()
    conns = oauth_connection(asgi_server(server.app))
    before = Outbounds(keyed(settings, "old key"))
    during = Outbounds(keyed(settings, "new key", "old key"))
    try:
        await before.make(conns, db).client("crm").request("GET", PATH)
        assert len(server.refreshes) == 1  # rotated refresh token stored under the old key

        # New key, old one as previous: the stored access token is used as it is (no reset to
        # the refresh token in the file, which HubSpot has already rotated away) ...
        crm = during.make(conns, db).client("crm")
        assert (await crm.request("GET", PATH)).json()["token_ok"]
        assert len(server.refreshes) == 1
        # ... and so is the stored, rotated refresh token.
        server.expire()
        assert (await crm.request("GET", PATH)).json()["token_ok"]
        assert [r["refresh_token"] for r in server.refreshes][:2] == [
            INITIAL_REFRESH,
            "rt-1-e5f6a7b8",
        ]
        config = Config(keyed(settings, "new key", "old key"), HubConfig.model_validate({}), None)
        async with db.session() as session:
            assert await rekey(session, load_secret_box(config.settings), config) == 1
        new_only = SecretBox("new key")
        async with db.read_session() as session:
            row = (
                await session.execute(text("SELECT refresh_token, access_token FROM credentials"))
            ).one()
        assert new_only.decrypt(row.refresh_token).startswith("rt-")
        assert new_only.decrypt(row.access_token).startswith("at-")
    finally:
        await before.aclose()
        await during.aclose()


async def test_rekey_command_refuses_keys_that_decrypt_nothing(
    backend: Backend, db: Database, tmp_path: Path
) -> None:
    env = switchboard_env(backend, tmp_path)

    def rekey_with(key: str, previous: str = "") -> subprocess.CompletedProcess[str]:
        env.update(SWITCHBOARD_SECRET_KEY=key, SWITCHBOARD_SECRET_KEY_PREVIOUS=previous)
        return subprocess.run(
            [SWITCHBOARD, "credentials", "rekey"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    sealed = SecretBox("old key").encrypt("rt-x")
    insert_row = text(
        "INSERT INTO credentials (connection, kind, config_fingerprint, refresh_token,"
        " needs_reauth, updated_at) VALUES ('crm', 'oauth2', 'f', :token, false, :now)"
    )
    async with db.session() as session:
        await session.execute(insert_row, {"token": sealed, "now": datetime.now(UTC)})
    refused = rekey_with("new key")
    assert refused.returncode == 1 and "nothing was changed" in refused.stderr
    done = rekey_with("new key", "old key")
    assert done.returncode == 0 and "re-encrypted 1 credential(s)" in done.stdout, done.stderr
