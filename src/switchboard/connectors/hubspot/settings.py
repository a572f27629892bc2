"""A ``kind = "hubspot"`` connection's settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr

from switchboard.connectors.fields import CustomFields
from switchboard.settings import Auth, ConnectionBase, Duration


class HubSpotConnection(ConnectionBase):
    kind: Literal["hubspot"]
    base_url: str = "https://api.hubapi.com"
    auth: Auth
    webhook_secret: SecretStr | None = None
    sync_interval: Duration = timedelta(minutes=5)
    archived_interval: Duration | None = Field(
        None,
        description="List archived contacts (how a sync sees deletions) at most this often; "
        "unset: every run. Each listing reads every archived contact, so a large account may "
        "prefer e.g. 1h and rely on webhooks for prompt deletions.",
    )
    properties: list[str] = Field(
        default_factory=lambda: ["email", "firstname", "lastname", "phone", "company"]
    )
    custom_fields: CustomFields = Field(
        default_factory=dict, description='Ours → a HubSpot property: {plan = "plan_tier"}.'
    )
