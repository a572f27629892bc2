"""The TODO app as the hub sees it: webhooks only, no outbound calls."""

from __future__ import annotations

from switchboard.connectors.base import Provider
from switchboard.connectors.todo_webhooks.settings import TodoWebhooksConnection
from switchboard.connectors.todo_webhooks.webhooks import receive

PROVIDER = Provider(
    kind="todo_webhooks",
    settings=TodoWebhooksConnection,
    receiver=receive,
    outbound=False,
    task_events=True,
)
