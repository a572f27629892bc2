"""The event provider's XML feed: a conditional-GET client and a streaming, hardened parser.

feed = FeedClient(outbound.client("events"), conn.url)
async with feed.fetch(etag=previous_etag) as fetched:   # streamed; 304 → fetched.not_modified
    parsed = parse_chunks([chunk async for chunk in fetched.chunks])  # or FeedParser chunk by chunk
for plan in parsed.plans: ...              # parsed.skipped counts invalid plans by reason
"""

from switchboard.connectors.xml_feed.client import FeedClient, Fetched
from switchboard.connectors.xml_feed.parser import (
    FeedParser,
    FeedPlan,
    InvalidPlan,
    NotAFeed,
    ParsedFeed,
    parse_chunks,
    parse_feed,
)

__all__ = [
    "FeedClient",
    "FeedParser",
    "FeedPlan",
    "Fetched",
    "InvalidPlan",
    "NotAFeed",
    "ParsedFeed",
    "parse_chunks",
    "parse_feed",
]
