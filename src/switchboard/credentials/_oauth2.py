"""``auth.type = "oauth2"``: the refresh-token grant, one refresh per connection at a time.

The live tokens are a ``credentials`` row (Fernet ciphertext). A process that needs a new access
token claims a short *refresh lease* on the row under a row lock, calls the token endpoint outside
any transaction (no database lock is held across the network), and stores the result (including
a rotated refresh token) before anyone uses it. Every other caller, in this process (an asyncio
lock) or another (the lease), waits and then reads the stored token: N concurrent callers, in any
number of processes, cause one call to the token endpoint.

``invalid_grant`` / ``BAD_REFRESH_TOKEN`` marks the row ``needs_reauth``: no further refresh is
attempted until the refresh token in the connections file changes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.changes.kinds import connection_event
from switchboard.connections.versions import bump
from switchboard.credentials._common import (
    CredentialStatus,
    as_datetime,
    call_token_endpoint,
    refused,
    resolve_url,
)
from switchboard.credentials._crypto import SecretBox
from switchboard.credentials._errors import CredentialsError, NeedsReauthorization
from switchboard.db import Database, insert, utcnow
from switchboard.models import ConnectionRow, Credential
from switchboard.settings import OAuth2Auth

if TYPE_CHECKING:
    from switchboard.http._clock import Clock

log = structlog.get_logger("switchboard.credentials")

DEFAULT_EXPIRES_IN = 1800.0
_MAX_EARLY = 300.0  # refresh at most 5 minutes early, at least a quarter of the lifetime early
_POLL_MIN, _POLL_MAX = 0.02, 0.5


class OAuth2Tokens:
    refreshable = True

    def __init__(
        self,
        connection: str,
        auth: OAuth2Auth,
        *,
        token_url: str,
        base_url: str,
        http: httpx.AsyncClient,
        db: Database,
        box: SecretBox,
        clock: Clock,
        lease_seconds: float,
        client_auth: Literal["body", "basic"] = "body",
    ) -> None:
        self.connection = connection
        self._auth = auth
        self._client_auth = client_auth
        self._url = resolve_url(base_url, token_url)
        self._http = http
        self._db = db
        self._box = box
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Under every key (rotation): a fingerprint made with an earlier key still matches.
        self._fingerprints = box.fingerprints(auth.refresh_token.get_secret_value())
        self._fingerprint = self._fingerprints[0]
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._use_until = 0.0
        self._stale: str | None = None

    # --- the provider protocol ------------------------------------------------------------

    async def token(self) -> str:
        if self._token is not None and self._clock.time() < self._use_until:
            return self._token
        async with self._lock:
            if self._token is not None and self._clock.time() < self._use_until:
                return self._token
            return await self._obtain()

    async def invalidate(self, token: str) -> None:
        async with self._lock:
            if self._token == token:
                self._token = None
            self._stale = token  # a stored copy of it is expired too

    async def status(self) -> CredentialStatus:
        async with self._db.read_session() as session:
            row = await session.get(Credential, self.connection)
        if row is None or row.config_fingerprint not in self._fingerprints:
            return CredentialStatus(type="oauth2", state="unused")
        if row.needs_reauth:
            return CredentialStatus(type="oauth2", state="needs_reauth", detail=row.reauth_reason)
        if row.access_token is None:
            return CredentialStatus(type="oauth2", state="unused")
        return CredentialStatus(type="oauth2", state="ok", expires_at=row.expires_at)

    # --- the refresh protocol ---------------------------------------------------------------

    async def _obtain(self) -> str:
        poll = _POLL_MIN
        while True:
            async with self._db.session() as session:
                row = await self._locked_row(session)
                if row.needs_reauth:
                    raise self._needs_reauth(row.reauth_reason)
                now = self._clock.time()
                if row.access_token is not None and row.refresh_at is not None:
                    stored = self._box.decrypt(row.access_token)
                    if stored != self._stale and now < row.refresh_at.timestamp():
                        self._token, self._use_until = stored, row.refresh_at.timestamp()
                        return stored
                leased = row.lease_until is not None and row.lease_until.timestamp() > now
                if not leased or row.lease_owner == self._owner:
                    row.lease_owner = self._owner
                    row.lease_until = as_datetime(now) + self._lease
                    row.updated_at = as_datetime(now)
                    refresh_cipher = row.refresh_token
                    break
            # Another process is refreshing: read its result when it lands (bounded by its
            # lease, after which we take over).
            await self._clock.sleep(poll)
            poll = min(poll * 2, _POLL_MAX)
        return await self._refresh(refresh_cipher)

    async def _refresh(self, refresh_cipher: str) -> str:
        try:
            access, rotated, expires_in = await self._grant(self._box.decrypt(refresh_cipher))
        except NeedsReauthorization as exc:
            if await self._finish(refresh_cipher, reauth_reason=exc.message):
                raise
            # Another process rotated the refresh token after our lease lapsed: ours is simply
            # old, not revoked. Use what it stored.
            return await self._obtain()
        except BaseException:
            await self._finish(refresh_cipher)
            raise
        now = self._clock.time()
        refresh_at = now + expires_in - min(_MAX_EARLY, expires_in / 4)
        await self._finish(
            refresh_cipher,
            result=(access, rotated, now + expires_in, refresh_at),
        )
        self._token, self._use_until, self._stale = access, refresh_at, None
        log.info("credentials_refreshed", connection=self.connection, expires_in=expires_in)
        return access

    async def _finish(
        self,
        refresh_cipher: str,
        *,
        result: tuple[str, str | None, float, float] | None = None,
        reauth_reason: str | None = None,
    ) -> bool:
        """Store the outcome and release the lease, in one transaction. False when the row had
        moved on to another refresh token (nothing stored)."""
        now = as_datetime(self._clock.time())
        async with self._db.session() as session:
            row = await self._locked_row(session)
            # The row moved on without us (our lease lapsed and another process refreshed):
            # its tokens are newer, keep them.
            current = row.refresh_token == refresh_cipher
            if row.lease_owner == self._owner:
                row.lease_owner, row.lease_until = None, None
            row.updated_at = now
            if not current:
                return False
            if reauth_reason is not None:
                row.needs_reauth, row.reauth_reason = True, reauth_reason
                row.access_token, row.refresh_at = None, None
                log.warning("credentials_need_reauthorisation", connection=self.connection)
                await _connection_needs_reauth(session, self.connection, reauth_reason)
            elif result is not None:
                access, rotated, expires_at, refresh_at = result
                if rotated is not None:
                    row.refresh_token = self._box.encrypt(rotated)
                row.access_token = self._box.encrypt(access)
                row.expires_at, row.refresh_at = as_datetime(expires_at), as_datetime(refresh_at)
                row.refreshed_at = now
        return True

    async def _locked_row(self, session: AsyncSession) -> Credential:
        """The row under a write lock, created (or reset) from the connections file."""
        row = await session.get(
            Credential, self.connection, with_for_update=True, populate_existing=True
        )
        if row is None:
            await session.execute(
                insert(session, Credential)
                .values(**self._initial(), connection=self.connection)
                .on_conflict_do_nothing()
            )
            row = await session.get(
                Credential, self.connection, with_for_update=True, populate_existing=True
            )
            assert row is not None
        elif row.config_fingerprint not in self._fingerprints:
            # The operator put a new refresh token in the file: that is a re-authorisation.
            for key, value in self._initial().items():
                setattr(row, key, value)
            log.info("credentials_reset_from_config", connection=self.connection)
        elif row.config_fingerprint != self._fingerprint:
            row.config_fingerprint = self._fingerprint  # same token, an earlier secret key
        return row

    def _initial(self) -> dict[str, Any]:
        return {
            "kind": "oauth2",
            "config_fingerprint": self._fingerprint,
            "refresh_token": self._box.encrypt(self._auth.refresh_token.get_secret_value()),
            "access_token": None,
            "expires_at": None,
            "refresh_at": None,
            "needs_reauth": False,
            "reauth_reason": None,
            "lease_owner": None,
            "lease_until": None,
            "refreshed_at": None,
            "updated_at": as_datetime(self._clock.time()),
        }

    async def _grant(self, refresh_token: str) -> tuple[str, str | None, float]:
        """POST the form-encoded refresh-token grant: (access token, rotated refresh token,
        expires_in)."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        secret = self._auth.client_secret.get_secret_value()
        headers = {}
        if self._client_auth == "basic":  # RFC 6749 2.3.1: the app's credentials in a header
            pair = f"{quote(self._auth.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": self._auth.client_id, "client_secret": secret}
        request = self._http.build_request("POST", self._url, data=form, headers=headers)
        response, body = await call_token_endpoint(
            self._http, self.connection, "OAuth token endpoint", request
        )
        if response.status_code != 200:
            if _is_invalid_grant(body):
                raise self._needs_reauth(
                    f"{self.connection}: needs re-authorisation: the refresh token is invalid, "
                    "expired or revoked; re-authorise and put the new refresh token in the "
                    "connections file",
                    status=response.status_code,
                    body=body,
                )
            raise refused(self.connection, "OAuth token endpoint", response, body)
        access = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access, str) or not access:
            raise CredentialsError(
                f"{self.connection}: OAuth token endpoint answered without an access_token",
                connection=self.connection,
            )
        rotated = body.get("refresh_token")
        expires_in = body.get("expires_in")
        return (
            access,
            rotated if isinstance(rotated, str) and rotated else None,
            float(expires_in) if isinstance(expires_in, int | float) else DEFAULT_EXPIRES_IN,
        )

    def _needs_reauth(
        self, message: str | None, *, status: int | None = None, body: Any = None
    ) -> NeedsReauthorization:
        return NeedsReauthorization(
            message or f"{self.connection}: needs re-authorisation",
            connection=self.connection,
            provider_status=status,
            body=body,
        )


async def _connection_needs_reauth(session: AsyncSession, connection: str, reason: str) -> None:
    """The connection's status says so too (listed and filtered by it, in every process), and
    the product hears of it (``connection.needs_reauth``)."""
    row = await session.get(ConnectionRow, connection, with_for_update=True)
    if row is None or row.status == "paused":
        return
    row.status, row.status_reason = "needs_reauth", reason
    row.updated_at = utcnow()
    await bump(session)
    await connection_event(session, "connection.needs_reauth", row)


def _is_invalid_grant(body: Any) -> bool:
    return isinstance(body, dict) and (
        body.get("error") == "invalid_grant" or body.get("status") == "BAD_REFRESH_TOKEN"
    )
