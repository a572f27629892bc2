"""The event feed's syncer: ``xml_feed`` connections are polled every ``interval``."""

from __future__ import annotations

from datetime import timedelta

from switchboard.config import Connection, XmlFeedConnection
from switchboard.events import service
from switchboard.syncs import Syncer, register


def _interval(conn: Connection) -> timedelta | None:
    return conn.interval if isinstance(conn, XmlFeedConnection) else None


SYNCER = register(
    Syncer(
        connection_kind="xml_feed",
        stream="events",
        run=service.sync_feed,
        interval=_interval,
        summary=service.summary,
    )
)
