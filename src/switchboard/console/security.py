"""The console's session cookie and its CSRF defences.

The cookie never holds an API key. It holds ``issued.nonce.signature``: the signature is an
HMAC of ``issued.nonce`` keyed by the API key the operator logged in with, so it is valid exactly
while that key is configured and for :data:`SESSION_TTL`, is useless as an ``X-API-Key``, and
needs no server-side state (any process of the cluster can check it). With no API key configured
the console is open, like the API (loopback only); the cookie then carries only the nonce.

Cross-site requests are refused three ways: the cookie is ``SameSite=Strict`` (a cross-site
request does not carry it), every form carries the session's nonce (a page on another origin
cannot read it; double submit), and a POST whose ``Origin`` or ``Sec-Fetch-Site`` names another
site is rejected before anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request, Response, status

COOKIE = "switchboard_console"
COOKIE_PATH = "/console"
SESSION_TTL = 12 * 3600
"""Seconds a login lasts."""
OPEN = "open"
"""The signature of a session when no API key is configured."""


@dataclass(frozen=True)
class Session:
    nonce: str
    """The CSRF token that every form of this session posts back."""
    issued: int
    cookie: str | None = None
    """A cookie to set on the response (a new open session), else None."""


def _sign(key: str, payload: str) -> str:
    return hmac.new(
        key.encode(), f"switchboard-console:{payload}".encode(), hashlib.sha256
    ).hexdigest()


def _matches_any(keys: tuple[str, ...], payload: str, signature: str) -> bool:
    # Every key is tried, so the time taken does not tell which one (if any) matched. Bytes:
    # compare_digest raises on non-ASCII text.
    matched = False
    presented = signature.encode()
    for key in keys:
        matched |= hmac.compare_digest(_sign(key, payload).encode(), presented)
    return matched


def new_cookie(key: str | None, *, now: float | None = None) -> tuple[str, Session]:
    """A fresh session, signed with ``key`` (None: the console is open)."""
    issued = int(time.time() if now is None else now)
    nonce = secrets.token_urlsafe(24)
    payload = f"{issued}.{nonce}"
    value = f"{payload}.{_sign(key, payload) if key is not None else OPEN}"
    return value, Session(nonce=nonce, issued=issued)


_COOKIE_VALUE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{1,64})\.([0-9a-f]{64}|open)", re.ASCII)
"""``issued.nonce.signature`` as :func:`new_cookie` writes it. Anything else (non-ASCII digits,
thousands of digits, other alphabets, another field count) is no session: a browser may send
any bytes, and parsing them must never raise."""


def parse_cookie(value: str | None) -> tuple[int, str, str] | None:
    """The ``(issued, nonce, signature)`` of a well-formed cookie value, else None (total)."""
    if not value:
        return None
    match = _COOKIE_VALUE.fullmatch(value)
    if match is None:
        return None
    return int(match.group(1)), match.group(2), match.group(3)


def read_session(
    value: str | None, keys: tuple[str, ...], *, now: float | None = None
) -> Session | None:
    """The session of a cookie value, or None when it is absent, malformed, expired or signed
    with a key that is not configured (any more). Whether the session was ended (logout) is the
    store's answer (:mod:`switchboard.console.sessions`), not this one."""
    parsed = parse_cookie(value)
    if parsed is None:
        return None
    issued, nonce, signature = parsed
    age = (time.time() if now is None else now) - issued
    if not -60 <= age <= SESSION_TTL:
        return None
    payload = f"{issued}.{nonce}"
    if keys:
        if not _matches_any(keys, payload, signature):
            return None
    elif signature != OPEN:
        return None
    return Session(nonce=nonce, issued=issued)


def check_key(keys: tuple[str, ...], presented: str) -> str | None:
    """The configured key equal to ``presented`` (compared in constant time), else None."""
    found: str | None = None
    candidate = presented.encode()
    for key in keys:
        if hmac.compare_digest(candidate, key.encode()):
            found = key
    return found


def set_cookie(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_TTL,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site.

    ``Sec-Fetch-Site`` (sent by current browsers) and ``Origin`` (sent with every cross-origin
    POST) are checked when present; a client that sends neither is not a browser on another site.
    Behind a reverse proxy the ``Host`` header must reach the hub unchanged.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"{request.url.scheme}://{host}", f"http://{host}", f"https://{host}")


def refuse_cross_site(request: Request) -> None:
    if not same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Cross-site request refused")


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; anything else is an empty form (the
    console's forms send nothing else, so it has no CSRF token either)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def check_csrf(session: Session, form: dict[str, str]) -> None:
    if not hmac.compare_digest(form.get("csrf", "").encode(), session.nonce.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Missing or invalid CSRF token")
