"""The HTTP/1.1 client deliveries POST with: kept-alive connections per (origin, address), each
opened to the address the SSRF check passed.

Why not httpx: a delivery is one small POST whose answer we keep 1 KiB of, thousands a second;
a profile of the burst bench put most of a worker's CPU in httpx's request and response models
and httpcore's pool bookkeeping (every queued request rescans the pool's connections, each scan
asking every socket whether it is readable). Here a connection is taken from a list, the request
is written in one ``write`` (headers and body together) and h11 parses the answer.

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
from dataclasses import dataclass, field

import h11
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
    h11: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0
    answered: bool = False

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
        request = [
            ("host", target.host_header),
            ("user-agent", USER_AGENT),
            ("content-length", str(len(body))),
            *headers.items(),
        ]
        conn, reused = await self._connection(target)
        try:
            return await self._exchange(conn, target, request, body, keep)
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
            return await self._exchange(conn, target, request, body, keep)
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
        self,
        conn: _Connection,
        target: Target,
        request: list[tuple[str, str]],
        body: bytes,
        keep: int,
    ) -> Answer:
        try:
            data = conn.h11.send(h11.Request(method="POST", target=target.path, headers=request))
            data = (data or b"") + (conn.h11.send(h11.Data(data=body)) or b"")
            data += conn.h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise ProtocolError(f"the request could not be written: {exc}") from None
        conn.writer.write(data)
        await conn.writer.drain()
        response: h11.Response | None = None
        head = b""
        read = 0
        while True:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(str(exc)) from None
            if event is h11.NEED_DATA:
                chunk = await conn.reader.read(READ)
                if not chunk and response is None:
                    raise ProtocolError("the server closed the connection without answering")
                conn.h11.receive_data(chunk)
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Response):
                response = event
                conn.answered = True
            elif isinstance(event, h11.Data):
                if len(head) < keep:
                    head += bytes(event.data[: keep - len(head)])
                read += len(event.data)
                if read > BODY_LIMIT:
                    conn.close()  # not worth reading on to keep the connection
                    break
            elif isinstance(event, h11.EndOfMessage):
                self._release(conn, target)
                break
            else:  # ConnectionClosed: a close-delimited body ended
                conn.close()
                break
        assert response is not None
        return Answer(
            status=response.status_code,
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in response.headers},
            head=head,
        )

    def _release(self, conn: _Connection, target: Target) -> None:
        if (
            self._closed
            or conn.h11.our_state is not h11.DONE
            or conn.h11.their_state is not h11.DONE
        ):
            conn.close()
            return
        conn.h11.start_next_cycle()
        conn.answered = False
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
