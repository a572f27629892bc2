"""The feed's HTTP client: one conditional ``GET`` through the outbound layer (timeouts, retries
honouring Retry-After, breaker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from switchboard.connectors.xml_feed.parser import CHUNK
from switchboard.http import ConnectionClient, Mode


@dataclass(frozen=True)
class Fetched:
    """A fetch's outcome: ``not_modified`` (HTTP 304, no body) or a document whose body is
    read chunk by chunk from ``chunks`` (inside :meth:`FeedClient.fetch`'s block)."""

    not_modified: bool
    chunks: AsyncIterator[bytes]
    etag: str | None
    last_modified: str | None
    content_type: str | None


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


class FeedClient:
    def __init__(self, client: ConnectionClient, url: str) -> None:
        self.client = client
        self.url = url

    @asynccontextmanager
    async def fetch(
        self,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        mode: Mode = "job",
    ) -> AsyncIterator[Fetched]:
        """``GET`` the feed, streamed; with validators from the last stored document, ask for it
        only if it changed (RFC 9110 §13.1: ``If-None-Match`` wins over ``If-Modified-Since``).

        Failures arrive as the outbound layer's errors (``TransientError``/``TerminalError``,
        or ``RetryLater`` in ``mode="job"``).
        """
        headers = {"Accept": "application/xml, text/xml;q=0.9, */*;q=0.1"}
        if etag:
            headers["If-None-Match"] = etag
        elif last_modified:
            headers["If-Modified-Since"] = last_modified
        async with self.client.stream("GET", self.url, headers=headers, mode=mode) as response:
            if response.status_code == 304:
                yield Fetched(True, _nothing(), etag, last_modified, None)
                return
            yield Fetched(
                not_modified=False,
                chunks=response.aiter_bytes(CHUNK),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                content_type=response.headers.get("content-type"),
            )
