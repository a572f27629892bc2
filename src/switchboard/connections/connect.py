"""The connect flow: an end user connects their own account with OAuth (authorization code +
PKCE S256), from a single-use link the product asks for.

1. ``POST /connect/sessions`` (API key) stores a session (only a hash of its token) valid
   30 minutes and answers its link, ``/connect/{token}``.
2. ``GET /connect/{token}`` consumes the session and sends the browser to the provider's
   authorize page with a fresh ``state`` (single-use, 10 minutes) and a PKCE challenge; the
   verifier stays here, encrypted.
3. ``GET /oauth/callback`` consumes the state, exchanges the code (with the verifier), asks the
   provider which account was connected, and creates the connection — or re-authorises the
   existing one of that end user and account (or the one the link was made for), clearing
   ``needs_reauth`` — then redirects to the session's ``return_url``.

Every way it can fail (unknown, expired or reused link or state, denied consent, failed code
exchange) ends on a page that says so, and the attempt's ``outcome`` and ``error`` record it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.changes.kinds import connection_event
from switchboard.connections.catalog import BY_KIND, IntegrationEntry
from switchboard.connections.schemas import ConnectionCreate, EndUserIO
from switchboard.connections.service import create
from switchboard.connections.store import seal, unseal
from switchboard.connections.versions import bump
from switchboard.credentials import SecretBox
from switchboard.db import Database, utcnow
from switchboard.errors import Unprocessable
from switchboard.models import ConnectionRow, ConnectSession, Credential, OAuthAttempt

log = structlog.get_logger("switchboard.connect")

SESSION_TTL = timedelta(minutes=30)
STATE_TTL = timedelta(minutes=10)
CALLBACK_PATH = "/oauth/callback"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def challenge(verifier: str) -> str:
    """PKCE S256: base64url(SHA-256(verifier)) without padding (RFC 7636, 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


class FlowError(Exception):
    """The flow cannot go on; ``title`` and the message make the page, ``status`` its code."""

    def __init__(self, status: int, title: str, message: str, outcome: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.outcome = outcome


def oauth_integration(integrations: dict[str, IntegrationEntry], name: str) -> IntegrationEntry:
    """The integration, if its provider has an authorization-code flow and it has the app's
    client id and secret; a 422 naming what is missing otherwise."""
    integ = integrations.get(name)
    if integ is None:
        raise Unprocessable(f"No integration named {name!r}", loc=("body", "integration"))
    oauth = BY_KIND[integ.provider].oauth
    if oauth is None or not (integ.settings.get("authorize_url") or oauth.authorize_url):
        raise Unprocessable(
            f"Integration {name!r} ({integ.provider}) has no OAuth authorize page",
            loc=("body", "integration"),
        )
    if not integ.settings.get("client_id"):
        raise Unprocessable(f"Integration {name!r} has no client_id", loc=("body", "integration"))
    if not integ.secrets.get("client_secret"):
        raise Unprocessable(
            f"Integration {name!r} has no client_secret", loc=("body", "integration")
        )
    return integ


def check_return_url(url: str | None) -> None:
    if url is None:
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not one
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unprocessable("return_url: an absolute http(s) URL", loc=("body", "return_url"))


def public_base(public_url: str | None, request_base: str) -> str:
    """Where browsers reach this hub: ``SWITCHBOARD_PUBLIC_URL`` behind a proxy, else the
    address the request came to."""
    return (public_url or request_base).rstrip("/")


def link(base: str, token: str) -> str:
    """A connect session's link."""
    return f"{base}/connect/{token}"


async def new_session(
    session: AsyncSession,
    *,
    integration: str,
    end_user: EndUserIO,
    tags: list[str],
    return_url: str | None,
    connection: str | None,
) -> tuple[str, ConnectSession]:
    """Store a connect session; returns its token (shown once) and the row."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = ConnectSession(
        token_hash=digest(token),
        integration=integration,
        connection=connection,
        end_user_id=end_user.id,
        end_user_email=end_user.email,
        end_user_organisation=end_user.organisation,
        tags=list(dict.fromkeys(tags)),
        return_url=return_url,
        expires_at=now + SESSION_TTL,
        created_at=now,
    )
    session.add(row)
    return token, row


async def start(
    db: Database,
    box: SecretBox,
    integrations: dict[str, IntegrationEntry],
    token: str,
    callback_url: str,
) -> str:
    """Consume a connect session and return the provider's authorize URL to redirect to."""
    now = utcnow()
    async with db.session() as session:
        row = await session.get(ConnectSession, digest(token), with_for_update=True)
        if row is None:
            raise FlowError(404, "Unknown link", "This connect link is not valid.")
        if row.used_at is not None:
            raise FlowError(
                410, "Link already used", "This connect link was opened before: ask for a new one."
            )
        if row.expires_at <= now:
            raise FlowError(
                410, "Link expired", "This connect link has expired: ask for a new one."
            )
        row.used_at = now
        integ = integrations.get(row.integration)
        if integ is None:
            raise FlowError(410, "Integration gone", "The integration of this link was removed.")
        oauth = BY_KIND[integ.provider].oauth
        assert oauth is not None  # checked when the session was made
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        session.add(
            OAuthAttempt(
                state_hash=digest(state),
                session=row.token_hash,
                integration=integ.name,
                code_verifier=box.encrypt(verifier),
                redirect_uri=callback_url,
                expires_at=now + STATE_TTL,
                created_at=now,
            )
        )
    scopes = integ.settings.get("scopes") or list(oauth.scopes)
    query = {
        "response_type": "code",
        "client_id": integ.settings["client_id"],
        "redirect_uri": callback_url,
        "scope": " ".join(scopes),
        "state": state,
        "code_challenge": challenge(verifier),
        "code_challenge_method": "S256",
    }
    base = str(integ.settings.get("authorize_url") or oauth.authorize_url)
    parts = urlsplit(base)
    joined = "&".join(p for p in (parts.query, urlencode(query)) if p)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, ""))


@dataclass(frozen=True)
class Connected:
    connection: str
    alias: str
    outcome: str  # connected | reauthorised
    return_url: str | None


async def _fail(db: Database, state_hash: str, outcome: str, error: str) -> None:
    async with db.session() as session:
        await session.execute(
            update(OAuthAttempt)
            .where(OAuthAttempt.state_hash == state_hash)
            .values(outcome=outcome, error=error[:2000])
        )
    log.info("connect_failed", outcome=outcome, error=error[:300])


async def finish(
    db: Database,
    box: SecretBox,
    integrations: dict[str, IntegrationEntry],
    http: httpx.AsyncClient,
    params: dict[str, str],
) -> Connected:
    """The callback: see the module docstring."""
    state = params.get("state") or ""
    if not state:
        raise FlowError(400, "Missing state", "The provider sent no state: start again.")
    key = digest(state)
    now = utcnow()
    problem: FlowError | None = None
    async with db.session() as session:  # committed whatever it finds: the record stays
        attempt = await session.get(OAuthAttempt, key, with_for_update=True)
        if attempt is None:
            raise FlowError(400, "Unknown state", "This authorisation is not one we started.")
        if attempt.used_at is not None:
            attempt.error = ((attempt.error or "") + f" [state presented again at {now}]")[-2000:]
            problem = FlowError(
                400, "Already used", "This authorisation was completed before: start again."
            )
        elif attempt.expires_at <= now:
            attempt.used_at = now
            attempt.outcome, attempt.error = "expired", "the state was older than 10 minutes"
            problem = FlowError(
                400, "Took too long", "The authorisation took more than 10 minutes: start again."
            )
        else:
            attempt.used_at = now
        connect = await session.get(ConnectSession, attempt.session)
        verifier = box.decrypt(attempt.code_verifier)
        redirect_uri = attempt.redirect_uri
        integ_name = attempt.integration
    if problem is not None:
        log.info("connect_failed", outcome=problem.title, error=problem.message)
        raise problem
    if connect is None:
        await _fail(db, key, "error", "its connect session is gone")
        raise FlowError(400, "Unknown link", "The connect link of this authorisation is gone.")
    if params.get("error"):
        reason = params.get("error_description") or params["error"]
        await _fail(db, key, "denied", f"{params['error']}: {reason}")
        raise FlowError(403, "Access not granted", f"The provider said: {reason}", "denied")
    code = params.get("code") or ""
    integ = integrations.get(integ_name)
    if not code or integ is None:
        await _fail(db, key, "exchange_failed", "no code" if not code else "integration removed")
        raise FlowError(400, "No code", "The provider sent no authorisation code.")
    try:
        token = await _exchange(http, integ, code, verifier, redirect_uri)
        base_url = str(integ.settings.get("base_url") or _default_base_url(integ))
        oauth = BY_KIND[integ.provider].oauth
        account = await oauth.account(http, base_url, token) if oauth and oauth.account else None
        api_base = oauth.api_base(token) if oauth and oauth.api_base else None
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        await _fail(db, key, "exchange_failed", str(exc) or type(exc).__name__)
        raise FlowError(
            502, "Could not finish", f"The provider did not accept the authorisation: {exc}"
        ) from None
    refresh = str(token.get("refresh_token") or "")
    if not refresh:
        await _fail(db, key, "exchange_failed", "the token answer has no refresh_token")
        raise FlowError(502, "Could not finish", "The provider gave no refresh token.")
    async with db.session() as session:
        done = await _store(session, box, integ, connect, account, refresh, api_base)
        await session.execute(
            update(OAuthAttempt)
            .where(OAuthAttempt.state_hash == key)
            .values(outcome=done.outcome, connection=done.connection)
        )
    log.info("connect_finished", connection=done.connection, outcome=done.outcome)
    return done


def _default_base_url(integ: IntegrationEntry) -> str:
    model = BY_KIND[integ.provider].settings
    field = model.model_fields.get("base_url")
    return str(field.default) if field is not None and field.default else ""


async def _exchange(
    http: httpx.AsyncClient, integ: IntegrationEntry, code: str, verifier: str, redirect_uri: str
) -> dict[str, Any]:
    oauth = BY_KIND[integ.provider].oauth
    assert oauth is not None
    # The integration's token URL, else the provider's: absolute, or under the API base URL.
    url = str(integ.settings.get("token_url") or oauth.token_path)
    if not re.match(r"https?://", url):
        base = integ.settings.get("base_url") or _default_base_url(integ)
        url = str(base).rstrip("/") + url
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    client_id = str(integ.settings["client_id"])
    secret = integ.secrets["client_secret"]
    auth: tuple[str, str] | None = None
    if oauth.client_auth == "basic":
        auth = (client_id, secret)
    else:
        form |= {"client_id": client_id, "client_secret": secret}
    response = (
        await http.post(url, data=form, auth=auth) if auth else await http.post(url, data=form)
    )
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        detail = ""
        if isinstance(body, dict):
            detail = str(body.get("error_description") or body.get("message") or body.get("error"))
        raise ValueError(f"token endpoint answered {response.status_code} {detail}".strip())
    return body


async def _store(
    session: AsyncSession,
    box: SecretBox,
    integ: IntegrationEntry,
    connect: ConnectSession,
    account: str | None,
    refresh: str,
    api_base: str | None,
) -> Connected:
    """Create the connection, or re-authorise the one the link names, or the end user's
    existing connection to the same account. ``api_base``: the account's own API host, when
    the token answer named one (it can move, so a re-authorisation takes the new one)."""
    existing: ConnectionRow | None = None
    if connect.connection is not None:
        existing = await session.get(ConnectionRow, connect.connection, with_for_update=True)
    elif account is not None:
        existing = await session.scalar(
            select(ConnectionRow)
            .where(
                ConnectionRow.integration == integ.name,
                ConnectionRow.account == account,
                ConnectionRow.end_user_id == connect.end_user_id,
            )
            .with_for_update()
        )
    auth = {"type": "oauth2", "refresh_token": refresh}
    if existing is not None:
        raw = unseal(box, existing.config)
        raw["auth"] = auth
        if api_base:
            raw["base_url"] = api_base
            existing.settings = {**existing.settings, "base_url": api_base}
        existing.config = seal(box, raw)
        existing.account = account or existing.account
        existing.status, existing.status_reason = "ok", None
        existing.updated_at = utcnow()
        # The live token state starts over from the new refresh token (needs_reauth cleared).
        await session.execute(
            update(Credential)
            .where(Credential.connection == existing.id)
            .values(needs_reauth=False, reauth_reason=None)
        )
        await bump(session)
        await connection_event(session, "connection.reauthorised", existing)
        return Connected(existing.id, existing.alias, "reauthorised", connect.return_url)
    alias = await _free_alias(session, f"{integ.name}-{account or secrets.token_hex(3)}")
    row = await create(
        session,
        box,
        ConnectionCreate(
            integration=integ.name,
            name=alias,
            end_user=EndUserIO(
                id=connect.end_user_id,
                email=connect.end_user_email,
                organisation=connect.end_user_organisation,
            ),
            tags=connect.tags,
            account=account,
            auth=auth,
            settings={"base_url": api_base} if api_base else {},
        ),
    )
    return Connected(row.id, row.alias, "connected", connect.return_url)


async def _free_alias(session: AsyncSession, wanted: str) -> str:
    base = re.sub(r"[^a-z0-9_-]", "-", wanted.lower())[:56].strip("-_") or "connection"
    alias, n = base, 1
    while await session.scalar(select(ConnectionRow.id).where(ConnectionRow.alias == alias)):
        n += 1
        alias = f"{base}-{n}"
    return alias
