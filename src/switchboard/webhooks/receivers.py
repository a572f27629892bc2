from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from switchboard.config import Config, Connection
from switchboard.db import Database

Receiver = Callable[[Request, str, Connection, Database, Config], Awaitable[Response]]
_RECEIVERS: dict[str, Receiver] = {}


def receiver(kind: str) -> Callable[[Receiver], Receiver]:
    """Register the webhook receiver for connections of ``kind``."""

    def register(fn: Receiver) -> Receiver:
        _RECEIVERS[kind] = fn
        return fn

    return register


def receiver_for(kind: str) -> Receiver | None:
    return _RECEIVERS.get(kind)
