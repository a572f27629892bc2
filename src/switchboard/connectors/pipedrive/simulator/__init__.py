"""A Pipedrive simulator (API v1 persons, webhooks v1) for tests and the sandbox."""

from switchboard.connectors.pipedrive.simulator.app import (
    API_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    WEBHOOK_PASSWORD,
    WEBHOOK_USER,
    PipedriveSimulator,
)
from switchboard.connectors.pipedrive.simulator.store import Store, split_name
from switchboard.connectors.pipedrive.simulator.webhooks import WebhookSettings

__all__ = [
    "API_TOKEN",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "REFRESH_TOKEN",
    "WEBHOOK_PASSWORD",
    "WEBHOOK_USER",
    "PipedriveSimulator",
    "Store",
    "WebhookSettings",
    "split_name",
]
