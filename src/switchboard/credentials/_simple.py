"""Token providers that keep their token in memory: static (bearer, API key, basic), client
credentials, Nango."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import structlog

from switchboard.credentials._common import (
    CachedToken,
    CredentialStatus,
    State,
    as_datetime,
    call_token_endpoint,
    jwt_expiry,
    refused,
    resolve_url,
)
from switchboard.credentials._errors import (
    CredentialsError,
    CredentialsUnavailable,
    NeedsReauthorization,
)
from switchboard.settings import ApiKeyAuth, BasicAuth, ClientCredentialsAuth, NangoAuth, TokenAuth

if TYPE_CHECKING:
    from switchboard.http._clock import Clock

log = structlog.get_logger("switchboard.credentials")


class StaticToken:
    """``auth.type = "token"``: a bearer token that never changes (HubSpot private app)."""

    refreshable = False

    def __init__(self, auth: TokenAuth) -> None:
        self._token = auth.token

    async def token(self) -> str:
        return self._token.get_secret_value()

    async def invalidate(self, token: str) -> None:
        return None

    async def status(self) -> CredentialStatus:
        return CredentialStatus(type="token", state="ok")


class StaticKey:
    """``auth.type = "api_key"`` (a key in a header or the query) and ``"basic"`` (user and
    password): a credential that never changes and is not a bearer token, so it places itself on
    the request (:meth:`place`) instead of the ``Authorization: Bearer`` header."""

    refreshable = False

    def __init__(self, auth: ApiKeyAuth | BasicAuth) -> None:
        self._auth = auth
        if isinstance(auth, BasicAuth):
            pair = f"{auth.username}:{auth.password.get_secret_value()}".encode()
            self._value = "Basic " + base64.b64encode(pair).decode()
        else:
            self._value = auth.prefix + auth.key.get_secret_value()

    async def token(self) -> str:
        return self._value

    async def invalidate(self, token: str) -> None:
        return None

    async def status(self) -> CredentialStatus:
        return CredentialStatus(type=self._auth.type, state="ok")

    def place(self, request: httpx.Request, token: str) -> None:
        auth = self._auth
        if isinstance(auth, BasicAuth):
            request.headers["Authorization"] = token
        elif auth.header is not None:
            request.headers[auth.header] = token
        else:
            assert auth.query_param is not None
            request.url = request.url.copy_merge_params({auth.query_param: token})


def authorize(provider: object, request: httpx.Request, token: str) -> None:
    """Put ``token`` from ``provider`` on ``request``: a bearer token unless the provider
    places its credential itself (:class:`StaticKey`)."""
    if isinstance(provider, StaticKey):
        provider.place(request, token)
    else:
        request.headers["Authorization"] = f"Bearer {token}"


class _Fetched:
    """A token fetched from a service and cached in memory; subclasses say how."""

    refreshable = True
    kind = ""

    def __init__(self, connection: str, http: httpx.AsyncClient, clock: Clock) -> None:
        self.connection = connection
        self._http = http
        self._cache = CachedToken(clock)
        self._clock = clock
        self._force = False
        self._state: State = "unused"
        self._detail: str | None = None
        self._failure: tuple[float, CredentialsError] | None = None

    async def token(self) -> str:
        value = self._cache.fresh()
        if value is not None:
            return value
        async with self._cache.lock:  # one fetch per connection, whatever the number of callers
            value = self._cache.fresh()
            if value is not None:
                return value
            if self._failure is not None and self._clock.time() < self._failure[0]:
                raise self._failure[1]  # don't hammer a service that said "re-authorise"
            try:
                value, use_until, expires_at = await self._fetch(force=self._force)
            except NeedsReauthorization as exc:
                self._state, self._detail = "needs_reauth", exc.message
                self._failure = (self._clock.time() + 60.0, exc)
                log.warning("credentials_need_reauthorisation", connection=self.connection)
                raise
            except (CredentialsError, CredentialsUnavailable) as exc:
                self._state, self._detail = "error", exc.message
                raise
            self._force, self._failure = False, None
            self._state, self._detail = "ok", None
            self._cache.set(value, use_until, expires_at)
            return value

    async def invalidate(self, token: str) -> None:
        if self._cache.value == token:
            self._cache.drop(token)
            self._force = True

    async def status(self) -> CredentialStatus:
        expires = self._cache.expires_at
        return CredentialStatus(
            type=self.kind,
            state=self._state,
            detail=self._detail,
            expires_at=as_datetime(expires) if expires is not None else None,
        )

    async def _fetch(self, *, force: bool) -> tuple[str, float, float | None]:
        """(token, cache until, expires at), wall-clock epoch seconds."""
        raise NotImplementedError


class ClientCredentials(_Fetched):
    """``auth.type = "client_credentials"``: POST ``{client_id, client_secret}`` as JSON to the
    token URL; the JWT is cached and replaced 60 s before it expires (ACME)."""

    kind = "client_credentials"
    REFRESH_BEFORE = 60.0

    def __init__(
        self,
        connection: str,
        auth: ClientCredentialsAuth,
        *,
        base_url: str,
        http: httpx.AsyncClient,
        clock: Clock,
    ) -> None:
        super().__init__(connection, http, clock)
        self._auth = auth
        self._url = resolve_url(base_url, auth.token_url)

    async def _fetch(self, *, force: bool) -> tuple[str, float, float | None]:
        request = self._http.build_request(
            "POST",
            self._url,
            json={
                "client_id": self._auth.client_id,
                "client_secret": self._auth.client_secret.get_secret_value(),
            },
        )
        response, body = await call_token_endpoint(
            self._http, self.connection, "token endpoint", request
        )
        if response.status_code != 200 or not isinstance(body, dict):
            raise refused(self.connection, "token endpoint", response, body)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise CredentialsError(
                f"{self.connection}: token endpoint answered without an access_token",
                connection=self.connection,
            )
        now = self._clock.time()
        expires_in = body.get("expires_in")
        expires_at = (
            now + float(expires_in) if isinstance(expires_in, int | float) else jwt_expiry(token)
        )
        use_until = (expires_at if expires_at is not None else now + 300.0) - self.REFRESH_BEFORE
        return token, use_until, expires_at


class NangoToken(_Fetched):
    """``auth.type = "nango"``: the access token Nango holds for the connection.

    Nango refreshes tokens itself (when they expire within 15 minutes); we cache its answer for
    at most 5 minutes and never past ``expires_at`` minus a minute. After a 401 from the provider
    the next fetch asks Nango for ``force_refresh=true``."""

    kind = "nango"
    MAX_CACHE = 300.0
    REFRESH_BEFORE = 60.0

    def __init__(
        self, connection: str, auth: NangoAuth, *, http: httpx.AsyncClient, clock: Clock
    ) -> None:
        super().__init__(connection, http, clock)
        self._auth = auth

    async def _fetch(self, *, force: bool) -> tuple[str, float, float | None]:
        auth = self._auth
        params = {"provider_config_key": auth.provider_config_key}
        if force:
            params["force_refresh"] = "true"
        request = self._http.build_request(
            "GET",
            resolve_url(auth.base_url, f"/connections/{quote(auth.connection_id, safe='')}"),
            params=params,
            headers={"Authorization": f"Bearer {auth.secret_key.get_secret_value()}"},
        )
        response, body = await call_token_endpoint(self._http, self.connection, "Nango", request)
        status = response.status_code
        if status == 401:
            raise CredentialsError(
                f"{self.connection}: Nango rejected the secret key (check auth.secret_key)",
                connection=self.connection,
                provider_status=status,
                body=body,
            )
        if status == 404:
            raise CredentialsError(
                f"{self.connection}: Nango has no connection {auth.connection_id!r} for "
                f"integration {auth.provider_config_key!r}",
                connection=self.connection,
                provider_status=status,
                body=body,
            )
        if status == 424:
            raise NeedsReauthorization(
                f"{self.connection}: Nango could not refresh the credentials of connection "
                f"{auth.connection_id!r}: re-authorise it in Nango",
                connection=self.connection,
                provider_status=status,
                body=body,
            )
        if status != 200 or not isinstance(body, dict):
            raise refused(self.connection, "Nango", response, body)
        credentials: Any = body.get("credentials") or {}
        token = credentials.get("access_token") if isinstance(credentials, dict) else None
        if not isinstance(token, str) or not token:
            raise CredentialsError(
                f"{self.connection}: Nango connection {auth.connection_id!r} has no access token",
                connection=self.connection,
            )
        now = self._clock.time()
        expires_at = _iso_epoch(credentials.get("expires_at"))
        use_until = now + self.MAX_CACHE
        if expires_at is not None:
            use_until = min(use_until, expires_at - self.REFRESH_BEFORE)
        return token, use_until, expires_at


def _iso_epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
