"""Token providers, selected by a connection's ``auth.type``.

* ``token`` — a static bearer token.
* ``oauth2`` — refresh-token grant; tokens live encrypted in the ``credentials`` table, one refresh
  at a time per connection across coroutines and processes; ``invalid_grant`` marks the
  connection as needing re-authorisation.
* ``nango`` — the access token Nango holds, cached for at most 5 minutes.
* ``client_credentials`` — a JWT from ``POST {client_id, client_secret}``, renewed 60 s early.
* ``api_key`` — a static key in a header or a query parameter; ``basic`` — user and password.

Connectors do not use this package directly: ``switchboard.http`` puts the token on each request
(:func:`authorize`) and, after a 401, invalidates it and retries once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import httpx

from switchboard.credentials._common import CredentialStatus, TokenProvider
from switchboard.credentials._crypto import SecretBox, SecretKeyError, load_secret_box
from switchboard.credentials._errors import (
    CredentialsError,
    CredentialsUnavailable,
    NeedsReauthorization,
)
from switchboard.credentials._oauth2 import OAuth2Tokens
from switchboard.credentials._rekey import rekey
from switchboard.credentials._simple import (
    ClientCredentials,
    NangoToken,
    StaticKey,
    StaticToken,
    authorize,
)
from switchboard.db import Database
from switchboard.settings import (
    ApiKeyAuth,
    Auth,
    BasicAuth,
    ClientCredentialsAuth,
    NangoAuth,
    OAuth2Auth,
    TokenAuth,
)

if TYPE_CHECKING:
    from switchboard.http._clock import Clock

__all__ = [
    "ClientCredentials",
    "CredentialStatus",
    "CredentialsError",
    "CredentialsUnavailable",
    "NangoToken",
    "NeedsReauthorization",
    "OAuth2Tokens",
    "SecretBox",
    "SecretKeyError",
    "StaticKey",
    "StaticToken",
    "TokenProvider",
    "authorize",
    "load_secret_box",
    "rekey",
    "token_provider",
]


def token_provider(
    connection: str,
    auth: Auth,
    *,
    base_url: str,
    http: httpx.AsyncClient,
    db: Database | None,
    box: SecretBox | None,
    clock: Clock,
    lease_seconds: float = 60.0,
    token_path: str | None = None,
    token_client_auth: Literal["body", "basic"] = "body",  # noqa: S107 - a scheme name
) -> TokenProvider:
    """The provider for ``auth``; ``http`` is the connection's client (its timeouts apply).
    ``token_path``: the provider's OAuth2 token endpoint on ``base_url`` (``auth.token_url``
    wins); ``token_client_auth``: how that endpoint takes the app's credentials (form fields,
    or an ``Authorization: Basic`` header)."""
    if isinstance(auth, TokenAuth):
        return StaticToken(auth)
    if isinstance(auth, OAuth2Auth):
        if db is None or box is None:
            raise ValueError(f"{connection}: oauth2 credentials need the database")
        token_url = auth.token_url or token_path
        if token_url is None:
            raise ValueError(f"{connection}: auth.token_url is required (no default for it)")
        return OAuth2Tokens(
            connection,
            auth,
            token_url=token_url,
            base_url=base_url,
            http=http,
            db=db,
            box=box,
            clock=clock,
            lease_seconds=lease_seconds,
            client_auth=token_client_auth,
        )
    if isinstance(auth, NangoAuth):
        return NangoToken(connection, auth, http=http, clock=clock)
    if isinstance(auth, ApiKeyAuth | BasicAuth):
        return StaticKey(auth)
    if isinstance(auth, ClientCredentialsAuth):
        return ClientCredentials(connection, auth, base_url=base_url, http=http, clock=clock)
    raise TypeError(f"unknown auth type {type(auth).__name__}")
