"""A ``kind = "xml_feed"`` connection's settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from switchboard.settings import ConnectionBase, Duration


class XmlFeedConnection(ConnectionBase):
    kind: Literal["xml_feed"]
    url: str
    interval: Duration = timedelta(seconds=30)
    timezone: str = "UTC"
