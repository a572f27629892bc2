"""The proxy's rules: which connection, which URL, which headers go each way.

Pure functions but :func:`target`, which finds the connection's outbound client. The transport
(retries, rate budget, breaker, credentials) is the connection's ``ConnectionClient``: a proxied
call is one of the hub's own outbound calls, with the same logs and metrics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import httpx

from switchboard.config import Config
from switchboard.deps import resolve_entry
from switchboard.errors import BadRequest, Conflict, Unprocessable
from switchboard.http import ConnectionClient, Outbound

RETRY_HEADER = "x-switchboard-retry"
"""``X-Switchboard-Retry: true`` lets a non-idempotent call (POST, PATCH) be retried on 429,
5xx and transport errors, like GET; the caller vouches that repeating it is harmless."""

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded by a proxy, plus those
# the Connection header names. Proxy-Connection is the pre-standard spelling still seen.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-authentication-info",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# The caller's credentials for the hub (the API key, cookies) are not the provider's, and the
# connection's credentials are injected by the client; Host and Content-Length are the
# client's to set for the new request.
_REQUEST_DROP = HOP_BY_HOP | {
    "host",
    "authorization",
    "cookie",
    "x-api-key",
    "content-length",
}
# The provider's cookies and authentication challenges are for the hub's credentials, not the
# caller's. Date, Server and X-Request-ID: the hub sends its own, and two of each would be
# invalid or ambiguous.
_RESPONSE_DROP = HOP_BY_HOP | {
    "set-cookie",
    "set-cookie2",
    "www-authenticate",
    "authentication-info",
    "authorization",
    "date",
    "server",
    "x-request-id",
}
_SCHEME = re.compile(rb"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class Target:
    """A connection the proxy may call: its client and the base URL every path stays under."""

    name: str
    client: ConnectionClient
    base_url: httpx.URL


def target(config: Config, outbound: Outbound, connection: str) -> Target:
    """The connection the proxy path names: 404 when there is none, 422 when it makes no
    outbound calls or has no base URL.

    ``connection`` is an id or an alias: the client is the id's."""
    entry = resolve_entry(config, connection)
    conn = entry.settings
    if not entry.active:
        raise Conflict(f"Connection {connection!r} is paused")
    base_url = getattr(conn, "base_url", None)
    if not config.provider_of(conn).outbound or not base_url:
        raise Unprocessable(
            f"Connection {connection!r} ({conn.kind}) has no provider API to proxy to",
            loc=("path", "connection"),
        )
    return Target(entry.id, outbound.client(entry.id), httpx.URL(base_url))


def provider_url(base: httpx.URL, raw_path: bytes, query: bytes) -> httpx.URL:
    """``base`` with ``raw_path`` (still percent-encoded, as received) appended to its path.

    Anything that could leave the base path is refused (400) rather than normalised: an absolute
    or scheme-relative URL, a backslash, an empty segment, and a segment that is ``.`` or ``..``
    or contains ``/``, ``\\`` or NUL once percent-decoded (up to three times: ``%2e%2e``, ``%2f``,
    ``%252e%252e``), which a provider's server could resolve outside the base path.
    """
    if _SCHEME.match(raw_path):
        raise BadRequest("The proxied path must be a path, not an absolute URL")
    if raw_path.startswith(b"/"):
        raise BadRequest("The proxied path must not start with '//'")
    if b"\\" in raw_path:
        raise BadRequest("The proxied path must not contain a backslash")
    segments = raw_path.split(b"/")
    for index, segment in enumerate(segments):
        if segment == b"" and index != len(segments) - 1:  # a trailing '/' is the provider's
            raise BadRequest("The proxied path must not contain empty segments ('//')")
        # Decoded as a server may (again and again: some decode after routing too): a segment must
        # not become '.' or '..', nor hide a separator or a NUL.
        decoded = segment
        for _ in range(3):
            decoded = unquote_to_bytes(decoded)
            if decoded in (b".", b".."):
                raise BadRequest("The proxied path must not contain '.' or '..' segments")
            if b"/" in decoded or b"\\" in decoded or b"\x00" in decoded:
                raise BadRequest("The proxied path must not contain an encoded '/', '\\' or NUL")
    prefix = base.raw_path.split(b"?", 1)[0].rstrip(b"/")
    path = prefix + b"/" + raw_path
    try:
        url = base.copy_with(raw_path=path + (b"?" + query if query else b""))
    except httpx.InvalidURL as exc:
        raise BadRequest(f"The proxied path is not a valid URL path: {exc}") from None
    # The checks above make this hold; checked again on the URL as httpx will send it.
    if (
        url.scheme != base.scheme
        or url.host != base.host
        or url.port != base.port
        or not url.raw_path.startswith(prefix + b"/")
    ):
        raise BadRequest("The proxied path leaves the connection's base URL")
    return url


def request_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The caller's headers to send on: none of the hop-by-hop ones, those the caller's
    ``Connection`` names, its credentials for the hub, or ``X-Switchboard-*``.

    Without an ``Accept-Encoding`` of the caller's, ``identity``: the provider's body is passed
    on undecoded, so it must be in an encoding the caller asked for."""
    items = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers]
    drop = _REQUEST_DROP | _named_in_connection(items)
    kept = [(k, v) for k, v in items if k not in drop and not k.startswith("x-switchboard-")]
    if not any(k == "accept-encoding" for k, _ in kept):
        kept.append(("accept-encoding", "identity"))
    return kept


def response_headers(headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
    """The provider's headers to return: none of the hop-by-hop ones, those its ``Connection``
    names, cookies or authentication headers."""
    items = [(k.decode("latin-1").lower(), v) for k, v in headers.raw]
    drop = _RESPONSE_DROP | _named_in_connection(
        [(k, v.decode("latin-1")) for k, v in items if k == "connection"]
    )
    return [(k.encode("latin-1"), v) for k, v in items if k not in drop]


def opted_in(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the caller allowed retries of a non-idempotent call (:data:`RETRY_HEADER`)."""
    return any(
        k.lower() == RETRY_HEADER.encode() and v.strip().lower() in (b"true", b"1")
        for k, v in headers
    )


def _named_in_connection(items: Iterable[tuple[str, str]]) -> set[str]:
    return {
        option.strip().lower()
        for k, v in items
        if k == "connection"
        for option in v.split(",")
        if option.strip()
    }
