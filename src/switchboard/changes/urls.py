"""Where subscriptions may deliver: http(s) URLs whose host resolves only to public addresses.

A private, loopback, link-local (cloud metadata at 169.254.169.254), multicast, reserved or
unspecified address is refused, unless private URLs are allowed (``[events]
allow_private_urls`` or ``SWITCHBOARD_EVENTS_ALLOW_PRIVATE_URLS``), because a subscription URL
is a request the hub makes on the caller's behalf from inside its network (SSRF). Every address
the host resolves to is checked (a name with one public and one private address is refused),
at creation and again before each delivery (a name may be re-pointed after it was accepted).
A delivery connects to the address its check passed (:func:`target`), never to a second
resolution of the name, which could be re-pointed in between (DNS rebinding). The sandbox's
receiver (``/sandbox/receiver/…`` on a loopback address) is always allowed while the sandbox
is enabled: the zero-config demo subscribes it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import quote, urlsplit

from switchboard.changes.client import Target
from switchboard.config import Config
from switchboard.errors import Unprocessable
from switchboard.settings import is_loopback

RECEIVER_PATH = "/sandbox/receiver/"
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


class UnsafeUrl(Unprocessable):
    """The subscription URL is not allowed."""


def private_allowed(config: Config) -> bool:
    return config.settings.events_allow_private_urls or config.hub.events.allow_private_urls


def _parts(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, path, path with the query)"""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"Invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("Only http and https URLs can receive events")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("The URL has no host")
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        try:
            host = host.encode("idna").decode("ascii")  # what DNS, Host and SNI carry
        except UnicodeError as exc:
            raise UnsafeUrl(f"Invalid host name: {exc}") from None
    port = port or (443 if parts.scheme == "https" else 80)
    # The request target as sent: what is not allowed in one percent-encoded (RFC 3986 §2),
    # an existing %XX escape kept.
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
    return parts.scheme, host, port, parts.path, path


def is_sandbox_receiver(config: Config, url: str) -> bool:
    _, host, _, path, _ = _parts(url)
    return config.settings.sandbox and is_loopback(host) and path.startswith(RECEIVER_PATH)


def _refused(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for label, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("unspecified", ip.is_unspecified),
        ("not globally routable", not ip.is_global),
    ):
        if flag:
            return label
    return None


async def check(config: Config, url: str) -> None:
    """Raise :class:`UnsafeUrl` unless events may be delivered to ``url`` now."""
    _parts(url)
    if not (private_allowed(config) or is_sandbox_receiver(config, url)):
        await target(config, url)


async def target(config: Config, url: str) -> Target:
    """Where a delivery to ``url`` connects now: the host resolved once and every address
    checked (unless private URLs are allowed); raises :class:`UnsafeUrl`."""
    scheme, host, port, _, path = _parts(url)
    checked = not (private_allowed(config) or is_sandbox_receiver(config, url))
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal: nothing to resolve
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise UnsafeUrl(f"The URL's host does not resolve: {exc}") from None
        addresses = [str(sockaddr[0]) for *_, sockaddr in infos]
    if not addresses:
        raise UnsafeUrl("The URL's host does not resolve")
    for address in addresses if checked else ():
        reason = _refused(address)
        if reason is not None:
            raise UnsafeUrl(
                f"The URL's host resolves to a {reason} address ({address}); set "
                "[events] allow_private_urls = true to allow it"
            )
    return Target(scheme=scheme, host=host, port=port, address=addresses[0], path=path)


def check_scheme(url: str) -> None:
    _parts(url)
