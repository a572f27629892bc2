"""The OAuth 2.0 authorization-code grant for simulators: consent page, codes and PKCE.

Shared by the HubSpot and Pipedrive simulators, which differ in wire shapes (how the app
authenticates to the token endpoint, what token and error answers look like, what an account
is) but not in the grant's rules, which are RFC 6749 §4.1 and RFC 7636:

* An unknown ``client_id`` or a ``redirect_uri`` not allowed for it gets an error page, never a
  redirect: redirecting there would make the server an open redirector (RFC 6749 §4.1.2.1).
  Real providers do the same.
* A code is single-use, expires after ``code_ttl`` seconds, and is bound to the client and the
  redirect URI it was issued for. The first presentation spends it, refused or not: a code seen
  twice may be stolen (RFC 6749 §4.1.2 and §10.5).
* With a ``code_challenge`` the exchange must present the verifier whose
  ``base64url(sha256(verifier))`` without padding is the challenge. Only ``S256`` is accepted:
  ``plain`` protects nothing against an observer of the authorize URL (OAuth 2.1 drops it).

Allowed redirect URIs: with ``redirect_uris`` set, an exact string match (providers compare with
the URL registered for the app); without, any absolute ``http``/``https`` URL without fragment
(RFC 6749 §3.1.2), because the hub under test listens on a port known only at run time.

``auto_approve`` skips the page: ``GET /oauth/authorize`` answers the Allow redirect for the
default account at once, so tests without a browser follow redirects with httpx.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

Refusal = Literal[
    "unknown_code", "used_code", "expired_code", "client_mismatch", "redirect_mismatch", "verifier"
]


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: ``BASE64URL(SHA256(ASCII(code_verifier)))`` without ``=`` padding."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query (kept as it is: RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


@dataclass
class Grant:
    """An authorization code and what the user approved with it."""

    code: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    account_id: int
    state: str | None
    code_challenge: str | None
    issued_at: float
    redeemed_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scopes": list(self.scopes),
            "account_id": self.account_id,
            "state": self.state,
            "pkce": self.code_challenge is not None,
            "issued_at": self.issued_at,
            "redeemed_at": self.redeemed_at,
        }


class GrantRefused(Exception):
    """A code exchange the server refuses; ``reason`` is one of :data:`Refusal`."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason: Refusal = reason


@dataclass(frozen=True)
class Consent:
    """How a provider's consent page names things."""

    provider: str  # "HubSpot"
    account_label: str  # what the account field asks for
    default_account: Callable[[], int]
    scopes: Callable[[Mapping[str, str]], tuple[str, ...]]  # from the authorize parameters


class AuthorizationServer:
    """Issues and redeems authorization codes for the apps in ``clients`` (thread-safe).

    ``clients`` is the simulator's own ``{client_id: client_secret}`` (shared, not copied), so an
    app a test registers there can authorize at once. ``events`` records every authorize
    decision and every exchange, in order, for tests to assert on.
    """

    def __init__(
        self,
        clients: dict[str, str],
        *,
        redirect_uris: Collection[str] | None = None,
        auto_approve: bool = False,
        code_ttl: float = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.redirect_uris = set(redirect_uris) if redirect_uris is not None else None
        self.auto_approve = auto_approve
        self.code_ttl = code_ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self.events: list[dict[str, Any]] = []

    def redirect_allowed(self, uri: str) -> bool:
        if self.redirect_uris is not None:
            return uri in self.redirect_uris
        parts = urlsplit(uri)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and "#" not in uri

    def record(self, event: str, **fields: Any) -> None:
        with self._lock:
            self.events.append({"event": event, "at": self.clock(), **fields})

    def issue(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scopes: tuple[str, ...],
        account_id: int,
        state: str | None,
        code_challenge: str | None,
    ) -> Grant:
        grant = Grant(
            code=secrets.token_urlsafe(24),
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            account_id=account_id,
            state=state,
            code_challenge=code_challenge,
            issued_at=self.clock(),
        )
        with self._lock:
            self._grants[grant.code] = grant
        self.record("authorized", **grant.as_json())
        return grant

    def redeem(self, *, code: str, client_id: str, redirect_uri: str, verifier: str) -> Grant:
        """The grant ``code`` names, spent; or :class:`GrantRefused` (recorded either way)."""
        now = self.clock()
        with self._lock:
            grant = self._grants.get(code)
            reason: Refusal | None = None
            if grant is None:
                reason = "unknown_code"
            elif grant.redeemed_at is not None:
                reason = "used_code"
            else:
                grant.redeemed_at = now
                if now >= grant.issued_at + self.code_ttl:
                    reason = "expired_code"
                elif grant.client_id != client_id:
                    reason = "client_mismatch"
                elif grant.redirect_uri != redirect_uri:
                    reason = "redirect_mismatch"
                elif grant.code_challenge is not None and not hmac.compare_digest(
                    s256(verifier), grant.code_challenge
                ):
                    reason = "verifier"
        if reason is not None:
            self.record("exchange_refused", code=code, client_id=client_id, reason=reason)
            raise GrantRefused(reason)
        assert grant is not None
        self.record("exchanged", code=code, client_id=client_id, account_id=grant.account_id)
        return grant

    def grants(self) -> list[Grant]:
        with self._lock:
            return list(self._grants.values())

    def configure(
        self, *, auto_approve: bool | None = None, redirect_uris: list[str] | None = None
    ) -> None:
        if auto_approve is not None:
            self.auto_approve = auto_approve
        if redirect_uris is not None:
            self.redirect_uris = set(redirect_uris) or None

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            events = list(self.events)
        return {
            "auto_approve": self.auto_approve,
            "redirect_uris": sorted(self.redirect_uris) if self.redirect_uris else None,
            "code_ttl": self.code_ttl,
            "grants": [g.as_json() for g in self.grants()],
            "events": events,
        }

    async def authorize(self, request: Request, consent: Consent) -> Response:
        """``GET /oauth/authorize`` (the consent page, or the redirect when ``auto_approve``)
        and ``POST /oauth/authorize`` (the page's Allow or Deny)."""
        if request.method == "POST":
            params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        else:
            params = dict(request.query_params)
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if client_id not in self.clients:
            self.record("authorize_refused", client_id=client_id, reason="unknown_client")
            return _error_page(consent, "An invalid app client_id was provided.")
        if not self.redirect_allowed(redirect_uri):
            self.record("authorize_refused", client_id=client_id, reason="redirect_uri")
            return _error_page(
                consent,
                f"Authorization failed: the redirect URL {redirect_uri!r} does not match the "
                "app's registered redirect URL.",
            )
        state = params.get("state")

        def fail(error: str, description: str) -> Response:
            self.record("denied", client_id=client_id, error=error, state=state)
            target = {"error": error, "error_description": description, "state": state}
            return RedirectResponse(with_query(redirect_uri, target), status_code=302)

        if params.get("response_type", "code") != "code":
            return fail("unsupported_response_type", "response_type must be code")
        challenge = params.get("code_challenge") or None
        method = params.get("code_challenge_method") or None
        if (challenge is None) != (method is None) or method not in (None, "S256"):
            return fail("invalid_request", "code_challenge_method must be S256, with a challenge")
        decision = params.get("decision") if request.method == "POST" else None
        if decision is None and not self.auto_approve:
            return _consent_page(request, consent, params)
        if decision == "deny":
            return fail("access_denied", "The user denied the app access to their account.")
        account = params.get("account", "")
        if decision is None:
            account_id = consent.default_account()
        elif account.isascii() and account.isdigit():
            account_id = int(account)
        else:
            return _consent_page(request, consent, params, problem="Enter a numeric account id.")
        grant = self.issue(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=consent.scopes(params),
            account_id=account_id,
            state=state,
            code_challenge=challenge,
        )
        target = {"code": grant.code, "state": state}
        return RedirectResponse(with_query(redirect_uri, target), status_code=302)


_STYLE = "body{font-family:sans-serif;max-width:32rem;margin:3rem auto}button{margin-right:1rem}"


def _error_page(consent: Consent, message: str) -> HTMLResponse:
    title = f"{consent.provider}: authorization failed"
    body = f"<h1>{html.escape(title)}</h1><p class=error>{html.escape(message)}</p>"
    return HTMLResponse(_document(title, body), status_code=400)


def _consent_page(
    request: Request, consent: Consent, params: Mapping[str, str], *, problem: str | None = None
) -> HTMLResponse:
    esc = html.escape
    client_id = params.get("client_id", "")
    hidden = "".join(
        f'<input type=hidden name="{esc(k)}" value="{esc(v)}">'
        for k, v in params.items()
        if k not in ("decision", "account")
    )
    scopes = "".join(f"<li>{esc(s)}</li>" for s in consent.scopes(params))
    account = params.get("account") or str(consent.default_account())
    title = f"{consent.provider}: connect an app"
    body = (
        f"<h1>{esc(title)}</h1>"
        f"<p>The app <strong id=app>{esc(client_id)}</strong> asks for access to your "
        f"{esc(consent.provider)} account with these scopes:</p><ul id=scopes>{scopes}</ul>"
        + (f"<p class=error>{esc(problem)}</p>" if problem else "")
        + f'<form method=post action="{esc(request.url.path)}">{hidden}'
        f'<p><label>{esc(consent.account_label)} <input name=account value="{esc(account)}" '
        "inputmode=numeric></label></p>"
        "<p><button name=decision value=allow>Allow</button>"
        "<button name=decision value=deny>Deny</button></p></form>"
    )
    return HTMLResponse(_document(title, body), status_code=400 if problem else 200)


def _document(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
