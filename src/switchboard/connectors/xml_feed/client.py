"""The feed's HTTP client: one conditional ``GET`` through the outbound layer (timeouts, retries
honouring Retry-After, breaker)."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.http import ConnectionClient, Mode


@dataclass(frozen=True)
class Fetched:
    """A fetch's outcome: ``not_modified`` (HTTP 304, ``body`` empty) or a document."""

    not_modified: bool
    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str | None


class FeedClient:
    def __init__(self, client: ConnectionClient, url: str) -> None:
        self.client = client
        self.url = url

    async def fetch(
        self,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        mode: Mode = "job",
    ) -> Fetched:
        """``GET`` the feed; with validators from the last stored document, ask for it only if
        it changed (RFC 9110 §13.1: ``If-None-Match`` wins over ``If-Modified-Since``).

        Failures arrive as the outbound layer's errors (``TransientError``/``TerminalError``,
        or ``RetryLater`` in ``mode="job"``).
        """
        headers = {"Accept": "application/xml, text/xml;q=0.9, */*;q=0.1"}
        if etag:
            headers["If-None-Match"] = etag
        elif last_modified:
            headers["If-Modified-Since"] = last_modified
        response = await self.client.request("GET", self.url, headers=headers, mode=mode)
        if response.status_code == 304:
            return Fetched(True, b"", etag, last_modified, None)
        return Fetched(
            not_modified=False,
            body=response.content,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            content_type=response.headers.get("content-type"),
        )
