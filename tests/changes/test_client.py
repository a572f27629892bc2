"""The delivery client against a scripted HTTP/1.1 server on a real port: answers framed by
length, by chunks and by the connection's close, kept-alive connections reused, and a POST on a
connection the server dropped sent again on a fresh one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from switchboard.changes.client import Pool, Target

Script = Callable[[int, int], bytes | None]
"""(connection number, request number on it) -> the raw answer, or None: close unanswered."""


class Server:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        served = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                served += 1
                answer = self.script(number, served)
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    return
        finally:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script], Server]]:
    started: list[Server] = []

    def start(script: Script) -> Server:
        server = Server(script)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.server is not None:
            server.server.close()
            await server.server.wait_closed()


async def _run(server: Server) -> Target:
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    return Target("http", "hooks.example", server.port, "127.0.0.1", "/in?x=1")


def _ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


async def test_length_framed_answers_reuse_one_connection(
    serve: Callable[[Script], Server],
) -> None:
    server = serve(lambda conn, n: _ok(b'{"n":%d}' % n))
    target = await _run(server)
    pool = Pool()
    try:
        first = await pool.post(target, {"webhook-id": "a"}, b"{}", keep=1024)
        second = await pool.post(target, {"webhook-id": "b"}, b"[1]", keep=1024)
    finally:
        await pool.aclose()
    assert (first.status, first.head, second.head) == (200, b'{"n":1}', b'{"n":2}')
    assert server.connections == 1
    request = server.requests[1]
    assert request.startswith(b"POST /in?x=1 HTTP/1.1\r\nhost: hooks.example:%d\r\n" % target.port)
    assert b"\r\nwebhook-id: b\r\n" in request and request.endswith(b"\r\n\r\n[1]")


async def test_a_chunked_answer_keeps_its_first_bytes(serve: Callable[[Script], Server]) -> None:
    chunk = b"x" * 1500
    answer = (
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ntransfer-encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk, len(chunk), chunk)
    )
    server = serve(lambda conn, n: answer)
    target = await _run(server)
    pool = Pool()
    try:
        got = await pool.post(target, {}, b"", keep=1024)
        again = await pool.post(target, {}, b"", keep=1024)
    finally:
        await pool.aclose()
    assert (got.status, got.headers["retry-after"], got.head) == (429, "7", chunk[:1024])
    assert again.status == 429 and server.connections == 1


async def test_an_answer_ended_by_the_close_is_read_and_its_connection_dropped(
    serve: Callable[[Script], Server],
) -> None:
    server = serve(lambda conn, n: b"HTTP/1.1 202 Accepted\r\nconnection: close\r\n\r\nqueued")
    target = await _run(server)
    pool = Pool()
    try:
        first = await pool.post(target, {}, b"", keep=1024)
        second = await pool.post(target, {}, b"", keep=1024)
    finally:
        await pool.aclose()
    assert (first.status, first.head, second.head) == (202, b"queued", b"queued")
    assert server.connections == 2


async def test_a_post_on_a_connection_the_server_dropped_goes_again_on_a_fresh_one(
    serve: Callable[[Script], Server],
) -> None:
    # Every connection answers its first request and drops the second unanswered, as a
    # server closing an idle connection just as a request arrives does.
    server = serve(lambda conn, n: _ok(b"ok") if n == 1 else None)
    target = await _run(server)
    pool = Pool()
    try:
        await pool.post(target, {}, b"1", keep=1024)
        got = await pool.post(target, {}, b"2", keep=1024)
    finally:
        await pool.aclose()
    assert got.status == 200
    assert server.connections == 2
    assert [r[-1:] for r in server.requests] == [b"1", b"2", b"2"]
