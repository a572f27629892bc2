"""The event provider's XML feed: a conditional-GET client and a streaming, hardened parser.

feed = FeedClient(outbound.client("events"), conn.url)
async with feed.fetch(etag=previous_etag) as fetched:   # streamed; 304 → fetched.not_modified
    parser = FeedParser()
    async for chunk in fetched.chunks:     # FeedTooLarge past the client's caps
        parser.feed(chunk)
        store(parser.take())               # plans as they are read, in document order
    summary = parser.close()               # summary.skipped counts invalid plans by reason
parse_feed(document).plans                 # a whole small document, duplicates resolved
"""

from switchboard.connectors.xml_feed.client import FeedClient, FeedTooLarge, Fetched
from switchboard.connectors.xml_feed.parser import (
    FeedParser,
    FeedPlan,
    InvalidPlan,
    NotAFeed,
    ParsedFeed,
    duplicate_message,
    parse_chunks,
    parse_feed,
    skip,
)

__all__ = [
    "FeedClient",
    "FeedParser",
    "FeedPlan",
    "FeedTooLarge",
    "Fetched",
    "InvalidPlan",
    "NotAFeed",
    "ParsedFeed",
    "duplicate_message",
    "parse_chunks",
    "parse_feed",
    "skip",
]
