"""A ``kind = "mapped_crm"`` connection's settings: where the CRM's endpoints are, how its
records map to the hub's fields, and (``connectors/mapped_crm/spec.py``) the declarative shape of
its REST API — pagination, record selector, signature scheme, rate-limit headers. Every default
is ACME's."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from switchboard.connectors.fields import check_custom_fields
from switchboard.connectors.mapped_crm.spec import (
    PagePagination,
    Pagination,
    PathText,
    RateLimitHeaders,
    RecordsPathText,
    SignatureScheme,
    WebhookEvents,
    WritablePathText,
    check_hub_fields,
)
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
    fields: dict[str, WritablePathText]
    id_field: PathText = "id"
    webhook_secret: SecretStr | None = None
    sync_interval: Duration = timedelta(minutes=5)
    updated_at_field: PathText | None = None
    records_path: RecordsPathText = "data"
    pagination: Pagination = PagePagination()
    update_method: Literal["PUT", "PATCH"] = "PUT"
    signature: SignatureScheme = SignatureScheme()
    webhook_events: WebhookEvents = WebhookEvents()
    rate_limit_headers: RateLimitHeaders = RateLimitHeaders()
    custom_fields: dict[str, WritablePathText] = Field(
        default_factory=dict, description='Ours → a field path: {plan = "account.plan"}.'
    )

    _hub_fields = field_validator("fields")(check_hub_fields)
    _custom_fields = field_validator("custom_fields")(check_custom_fields)
