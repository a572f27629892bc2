"""A Pipedrive connection in the connections file (``kind = "pipedrive"``).

    [connections.pipedrive]
    kind = "pipedrive"
    api_token = "${PIPEDRIVE_API_TOKEN}"
    webhook_user = "hub"
    webhook_password = "${PIPEDRIVE_WEBHOOK_PASSWORD}"

or, for an OAuth app, ``auth = {type = "oauth2", client_id, client_secret, refresh_token}``
(``token_url`` defaults to Pipedrive's). Exactly one of ``api_token`` and ``auth``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from switchboard.connectors.fields import CustomFields
from switchboard.connectors.pipedrive.oauth import TOKEN_URL
from switchboard.settings import Auth, ConnectionBase, Duration, OAuth2Auth

API_TOKEN_HEADER = "x-api-token"  # noqa: S105 - a header name


class PipedriveConnection(ConnectionBase):
    kind: Literal["pipedrive"]
    base_url: str = Field(
        "https://api.pipedrive.com",
        description="The API host: api.pipedrive.com, or the company's own "
        "(https://<company>.pipedrive.com/api, an OAuth token's api_domain).",
    )
    api_token: SecretStr | None = Field(
        None, description="A user's personal API token, sent in the x-api-token header."
    )
    auth: Auth | None = Field(
        None, description="OAuth2 (or another bearer scheme) instead of an API token."
    )
    webhook_user: SecretStr | None = Field(
        None, description="HTTP Basic user set on the Pipedrive webhook; unset: not checked."
    )
    webhook_password: SecretStr | None = Field(
        None, description="HTTP Basic password set on the Pipedrive webhook."
    )
    sync_interval: Duration = Field(
        timedelta(minutes=5), description="How often a full pass over persons runs."
    )
    page_size: int = Field(
        500, ge=1, le=500, description="Persons per list page (Pipedrive allows up to 500)."
    )
    custom_fields: CustomFields = Field(
        default_factory=dict,
        description="Ours → a custom person field's key (its 40-character hash): "
        '{plan = "5ba4…e2f1"}.',
    )

    @model_validator(mode="after")
    def _one_credential(self) -> PipedriveConnection:
        if (self.api_token is None) == (self.auth is None):
            raise ValueError("set exactly one of api_token and auth")
        if (self.webhook_user is None) != (self.webhook_password is None):
            raise ValueError("set both webhook_user and webhook_password, or neither")
        if isinstance(self.auth, OAuth2Auth) and self.auth.token_url is None:
            # The generic default is relative to base_url; Pipedrive's token host is its own.
            object.__setattr__(self, "auth", self.auth.model_copy(update={"token_url": TOKEN_URL}))
        return self
