"""Event feed and search metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

INGESTS = Counter(
    "switchboard_feed_ingests_total",
    "Feed fetches by result: stored, unchanged, not_modified, not_a_feed, provider_error.",
    ["connection", "result"],
)
PLANS_WRITTEN = Counter(
    "switchboard_feed_plans_written_total", "Plans inserted or changed.", ["connection"]
)
PLANS_SKIPPED = Counter(
    "switchboard_feed_plans_skipped_total",
    "Invalid plans skipped, by reason.",
    ["connection", "reason"],
)
PLANS_IN_FEED = Gauge(
    "switchboard_feed_plans_in_feed",
    "Valid plans in the last stored document.",
    ["connection"],
    multiprocess_mode="mostrecent",  # whichever process ingested last
)
# Each API process has its own index: with several, these show the one furthest behind.
INDEX_VERSION = Gauge(
    "switchboard_search_index_version",
    "Store version the index has loaded.",
    multiprocess_mode="livemin",
)
INDEX_PLANS = Gauge(
    "switchboard_search_index_plans", "Searchable plans in the index.", multiprocess_mode="livemin"
)
INDEX_BYTES = Gauge(
    "switchboard_search_index_bytes",
    "Approximate memory held by the search index (it holds searchable plans only).",
    multiprocess_mode="livemax",
)
INDEX_LOADED_AT = Gauge(
    "switchboard_search_index_checked_timestamp_seconds",
    "When this process last confirmed its index is current (epoch seconds).",
    multiprocess_mode="livemin",
)
_CACHE_LOOKUPS = Counter(
    "switchboard_search_cache_lookups_total",
    "Search answers by whether the snapshot's answer cache held them (hit) or not (miss).",
    ["result"],
)
CACHE_HITS = _CACHE_LOOKUPS.labels("hit")
CACHE_MISSES = _CACHE_LOOKUPS.labels("miss")
CACHE_SIZE = Gauge(
    "switchboard_search_cache_bytes",
    "Bytes of encoded answers (and their gzip encodings) the current snapshot's cache holds.",
    multiprocess_mode="livesum",
)
