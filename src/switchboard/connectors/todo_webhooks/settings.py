"""A ``kind = "todo_webhooks"`` connection's settings (an inbound-only webhook source)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from switchboard.settings import ConnectionSettings


class TodoWebhooksConnection(ConnectionSettings):
    kind: Literal["todo_webhooks"]
    secret: SecretStr | None = None
