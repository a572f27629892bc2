"""A ``kind = "mapped_crm"`` connection's settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import SecretStr

from switchboard.settings import Auth, ConnectionBase, Duration, Strict


class MappedCrmPaths(Strict):
    list: str
    item: str
    create: str


class MappedCrmConnection(ConnectionBase):
    kind: Literal["mapped_crm"]
    base_url: str
    auth: Auth
    paths: MappedCrmPaths
    fields: dict[str, str]
    id_field: str = "id"
    webhook_secret: SecretStr | None = None
    sync_interval: Duration = timedelta(minutes=5)
