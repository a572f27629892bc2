"""The event provider's XML feed as the hub sees it: polled every ``interval`` into the events
store."""

from __future__ import annotations

from datetime import timedelta

from switchboard.connectors.base import Provider
from switchboard.connectors.xml_feed.settings import XmlFeedConnection
from switchboard.events import service
from switchboard.settings import ConnectionSettings
from switchboard.syncs import Syncer


def _interval(conn: ConnectionSettings) -> timedelta | None:
    return conn.interval if isinstance(conn, XmlFeedConnection) else None


PROVIDER = Provider(
    kind="xml_feed",
    settings=XmlFeedConnection,
    syncer=Syncer(
        stream="events", run=service.sync_feed, interval=_interval, summary=service.summary
    ),
)
