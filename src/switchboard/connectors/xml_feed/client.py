"""The feed's HTTP client: one conditional ``GET`` through the outbound layer (timeouts, retries
honouring Retry-After, breaker), its body streamed under size caps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from switchboard.connectors.xml_feed.parser import CHUNK
from switchboard.errors import TerminalError
from switchboard.http import ConnectionClient, Mode


class FeedTooLarge(TerminalError):
    """The provider's answer is larger than the configured cap; nothing of it is used."""

    status_code = 502


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
    def __init__(
        self,
        client: ConnectionClient,
        url: str,
        *,
        max_bytes: int | None = None,
        max_download_bytes: int | None = None,
    ) -> None:
        """``max_bytes`` caps the decoded document, ``max_download_bytes`` the answer as sent
        (before ``Content-Encoding`` is undone: a small gzip body can decode to gigabytes)."""
        self.client = client
        self.url = url
        self.max_bytes = max_bytes
        self.max_download_bytes = max_download_bytes

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
        or ``RetryLater`` in ``mode="job"``); a body over a cap raises :class:`FeedTooLarge`
        as soon as the cap is passed (or at once, from ``Content-Length``).
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
            declared = response.headers.get("content-length", "")
            if (
                self.max_download_bytes is not None
                and declared.isascii()
                and declared.isdigit()
                and len(declared) < 20
                and int(declared) > self.max_download_bytes
            ):
                raise self._too_large("sent", int(declared), self.max_download_bytes)
            yield Fetched(
                not_modified=False,
                chunks=self._capped(response),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                content_type=response.headers.get("content-type"),
            )

    async def _capped(self, response: httpx.Response) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in response.aiter_bytes(CHUNK):
            size += len(chunk)
            if self.max_bytes is not None and size > self.max_bytes:
                raise self._too_large("decoded", size, self.max_bytes)
            sent = response.num_bytes_downloaded
            if self.max_download_bytes is not None and sent > self.max_download_bytes:
                raise self._too_large("sent", sent, self.max_download_bytes)
            yield chunk

    def _too_large(self, what: str, size: int, cap: int) -> FeedTooLarge:
        return FeedTooLarge(
            f"{self.client.name}: the feed is larger than allowed ({what}: over {cap:,} bytes, "
            f"read {size:,}); nothing of it was used"
        )
