"""The HTTP/1.1 client deliveries POST with: kept-alive connections per (origin, address), each
opened to the address the SSRF check passed.

Why not httpx: a delivery is one small POST whose answer we keep 1 KiB of, thousands a second;
a profile of the burst bench put most of a worker's CPU in httpx's request and response models
and httpcore's pool bookkeeping (every queued request rescans the pool's connections, each scan
asking every socket whether it is readable), and h11, in pure Python, cost ~150 µs an exchange
more. Here a connection is taken from a list, the request (our own headers: nothing to escape
but the URL, which ``urls`` percent-encodes) is written in one ``write``, headers and body
together, and httptools (llhttp, uvicorn's parser) parses the answer.

Why the address is given, not resolved here: a name resolved once for the check and again to
connect can be re-pointed in between (DNS rebinding), so the check's address is the one
connected to; the original name still goes in ``Host`` and, for https, in SNI and the
certificate check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass

import httptools
import httpx

KEEPALIVE = 5.0
"""Seconds an idle connection is kept (uvicorn, like most servers, closes after 5)."""
READ = 65_536
BODY_LIMIT = 65_536
"""An answer longer than this is not read to its end: its connection is closed instead."""
USER_AGENT = "switchboard-webhooks"


@dataclass(frozen=True)
class Target:
    """Where one POST goes: ``address`` is the IP connected to, ``host`` the URL's name."""

    scheme: str
    host: str
    port: int
    address: str
    path: str

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    head: bytes
    """The first ``keep`` bytes of the body."""


class ProtocolError(Exception):
    """The server's answer was not valid HTTP/1.1 (or the connection closed mid-answer)."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    answered: bool = False
    """Whether the server sent anything for the current request."""

    def usable(self, now: float) -> bool:
        # A connection the server closed while idle has seen EOF: reusing it would fail the
        # next POST for nothing.
        return (
            now - self.idle_since < KEEPALIVE
            and not self.writer.is_closing()
            and not self.reader.at_eof()
        )

    def close(self) -> None:
        self.writer.close()


class _Reading:
    """The parser's callbacks for one answer (httptools.parser.protocol.HTTPProtocol)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.parser = httptools.HttpResponseParser(self)
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.head = b""
        self.read = 0
        self.messages = 0
        self.done = False
        self.keep_alive = False

    def on_message_begin(self) -> None:
        self.messages += 1

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if len(self.head) < self.keep:
            self.head += body[: self.keep - len(self.head)]
        self.read += len(body)

    def on_message_complete(self) -> None:
        if self.status is not None and self.status < 200:
            # 1xx (103 Early Hints...): informational, the answer follows.
            self.status, self.headers = None, {}
            return
        self.done = True
        # Only here: llhttp resets the flag for the next message once this one is complete.
        self.keep_alive = self.parser.should_keep_alive()


def _request(target: Target, headers: dict[str, str], body: bytes) -> bytes:
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"host: {target.host_header}",
        f"user-agent: {USER_AGENT}",
        f"content-length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    if any("\r" in line or "\n" in line for line in lines):
        raise ProtocolError("a request header holds a line break")
    head = "\r\n".join(lines)
    try:
        return (head + "\r\n\r\n").encode("ascii") + body
    except UnicodeEncodeError:
        raise ProtocolError("a request header is not ASCII") from None


_Key = tuple[str, str, int, str]


class Pool:
    """Kept-alive connections by (scheme, host, port, address); the caller bounds how many
    POSTs it makes at once. Close with :meth:`aclose`."""

    def __init__(self) -> None:
        self._idle: defaultdict[_Key, list[_Connection]] = defaultdict(list)
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def post(
        self, target: Target, headers: dict[str, str], body: bytes, *, keep: int
    ) -> Answer:
        """POST ``body`` to ``target``, keeping ``keep`` bytes of the answer's body; raises
        ``OSError`` or :class:`ProtocolError`. The caller bounds its time (``asyncio.timeout``:
        connect, write and read in all); a connection it cancels is closed, never reused."""
        request = _request(target, headers, body)
        conn, reused = await self._connection(target)
        try:
            return await self._exchange(conn, target, request, keep)
        except (OSError, ProtocolError):
            conn.close()
            if not reused or conn.answered:
                raise
        except BaseException:
            conn.close()
            raise
        # The server closed a kept-alive connection as this POST went out on it (before any
        # answer): once more on a fresh one, as httpcore does.
        conn, _ = await self._connection(target, fresh=True)
        try:
            return await self._exchange(conn, target, request, keep)
        except BaseException:
            conn.close()
            raise

    async def _connection(self, target: Target, *, fresh: bool = False) -> tuple[_Connection, bool]:
        key = (target.scheme, target.host, target.port, target.address)
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle and not fresh:
            conn = idle.pop()
            if conn.usable(now):
                return conn, True
            conn.close()
        tls = None
        if target.scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            tls = self._ssl
        reader, writer = await asyncio.open_connection(
            target.address,
            target.port,
            ssl=tls,
            server_hostname=target.host if tls is not None else None,
            limit=READ,
        )
        return _Connection(reader, writer), False

    async def _exchange(
        self, conn: _Connection, target: Target, request: bytes, keep: int
    ) -> Answer:
        conn.answered = False
        conn.writer.write(request)
        await conn.writer.drain()
        reading = _Reading(keep)
        while not reading.done:
            chunk = await conn.reader.read(READ)
            if not chunk:
                framed = (
                    "content-length" in reading.headers or "transfer-encoding" in reading.headers
                )
                if reading.status is None or framed:
                    raise ProtocolError("the server closed the connection mid-answer")
                break  # a body delimited by the connection's close ended
            conn.answered = True
            try:
                reading.parser.feed_data(chunk)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                raise ProtocolError(f"not an HTTP/1.1 answer: {exc}") from None
            if reading.read > BODY_LIMIT:
                break  # not worth reading on to keep the connection
        if reading.done and reading.messages == 1 and reading.keep_alive:
            self._release(conn, target)
        else:
            conn.close()
        assert reading.status is not None
        return Answer(status=reading.status, headers=reading.headers, head=reading.head)

    def _release(self, conn: _Connection, target: Target) -> None:
        if self._closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle[(target.scheme, target.host, target.port, target.address)].append(conn)

    async def aclose(self) -> None:
        self._closed = True
        conns = [conn for idle in self._idle.values() for conn in idle]
        self._idle.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                await conn.writer.wait_closed()
