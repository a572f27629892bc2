from tests.events.conftest import (  # noqa: F401 - shared fixtures: the sandbox feed
    feed,
    feed_sandbox,
    feed_url,
    outbound,
    settings,
    sync_now,
)
