from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import Request, Response

from switchboard.db import Database

if TYPE_CHECKING:
    from switchboard.config import Config, Connection

Receiver = Callable[[Request, str, "Connection", Database, "Config"], Awaitable[Response]]
