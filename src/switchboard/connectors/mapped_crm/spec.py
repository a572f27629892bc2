"""The declarative description of a REST CRM (``kind = "mapped_crm"``), as validated settings.

The vocabulary follows Airbyte's low-code connectors (paginator, record selector, field path,
authenticator), much smaller: the strategies below are the only ones. Every default reproduces
the ACME shape (``page``/``per_page`` → ``{"data": [...], "next_page": n}``, ``X-Acme-Signature:
sha256=<hex>``), so a connection that names none of these sections keeps working unchanged.

``config.py`` uses its types, so this module imports nothing of the hub's at import time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from switchboard.connectors.mapped_crm.paths import parse_path, writable
from switchboard.settings import Duration


def _path(value: str) -> str:
    parse_path(value)
    return value


def _records_path(value: str) -> str:
    parse_path(value, allow_empty=True)
    return value


def _writable_path(value: str) -> str:
    writable(parse_path(value))
    return value


def _unset_if_empty(value: object) -> object:
    return None if value == "" else value


PathText = Annotated[str, AfterValidator(_path)]
"""A field path (see :mod:`switchboard.connectors.mapped_crm.paths`), checked at start-up."""
WritablePathText = Annotated[str, AfterValidator(_writable_path)]
"""A field path the connector can also write."""
RecordsPathText = Annotated[str, AfterValidator(_records_path)]
"""A path to the list of records in a page's body; ``""``: the body is the list."""
OptionalPathText = Annotated[PathText | None, BeforeValidator(_unset_if_empty)]
"""A field path, or none (``""`` in TOML, which has no null)."""


def check_hub_fields(fields: dict[str, str]) -> dict[str, str]:
    """``fields``' keys are the hub's field names (the rule :class:`FieldMap` applies, checked
    at start-up rather than at the first call)."""
    from switchboard.connectors.crm import FIELDS  # imported late: crm imports config

    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown hub fields {unknown} (use {', '.join(FIELDS)})")
    return fields


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- pagination ---------------------------------------------------------------------------------


class PagePagination(_Spec):
    """Page numbers: ``?{page_param}=n&{size_param}=page_size``. The next page is read from
    ``next_page_path`` (a number greater than this page's, or null/absent after the last); without
    it, a page shorter than ``page_size`` is the last. The default is ACME's."""

    type: Literal["page"] = "page"
    page_param: str = "page"
    size_param: str = "per_page"
    page_size: int = Field(100, ge=1)
    first_page: int = Field(1, ge=0)
    next_page_path: OptionalPathText = "next_page"


class OffsetPagination(_Spec):
    """Offsets: ``?{offset_param}=n&{limit_param}=page_size``; a short page is the last."""

    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    page_size: int = Field(100, ge=1)


class CursorPagination(_Spec):
    """An opaque cursor: the next one at ``cursor_path`` in the body, or the URL of the ``Link:
    <…>; rel="next"`` header (``link_header = true``). ``follow = "param"`` sends it back as
    ``?{cursor_param}=…``; ``"url"`` calls it as the next page's URL (the default for a Link
    header, which can only be followed). The first page is asked without a cursor."""

    type: Literal["cursor"]
    cursor_path: OptionalPathText = None
    link_header: bool = False
    follow: Literal["param", "url"] | None = None
    cursor_param: str = "cursor"
    size_param: Annotated[str | None, BeforeValidator(_unset_if_empty)] = "limit"
    """``""``: send no page size (the CRM's own applies)."""
    page_size: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> CursorPagination:
        if (self.cursor_path is None) == (not self.link_header):
            raise ValueError("set exactly one of cursor_path or link_header = true")
        if self.link_header and self.follow == "param":
            raise ValueError('follow: a Link header gives a URL: use follow = "url"')
        return self

    @property
    def follows_url(self) -> bool:
        return self.follow == "url" or (self.follow is None and self.link_header)


Pagination = Annotated[
    PagePagination | OffsetPagination | CursorPagination, Field(discriminator="type")
]


# --- webhooks -------------------------------------------------------------------------------------


class SignatureScheme(_Spec):
    """How the CRM signs its webhooks: ``{header}: {prefix}{encoding of HMAC-{algorithm}}`` over
    the raw body, or over ``{timestamp}.{body}`` with the timestamp (epoch seconds) in
    ``timestamp_header``, refused when more than ``tolerance_seconds`` away from now."""

    header: str = "X-Acme-Signature"
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = "sha256="
    signed: Literal["body", "timestamp.body"] = "body"
    timestamp_header: str | None = None
    tolerance_seconds: int = Field(300, ge=1)

    @model_validator(mode="after")
    def _timestamp(self) -> SignatureScheme:
        if self.signed == "timestamp.body" and not self.timestamp_header:
            raise ValueError('timestamp_header: required when signed = "timestamp.body"')
        return self


class WebhookEvents(_Spec):
    """Where an event's identity and its record are in a webhook body (ACME: ``{"id", "payload":
    <record>}``). The record's own id is read with the connection's ``id_field``."""

    id_path: PathText = "id"
    record_path: PathText = "payload"


# --- rate limits ----------------------------------------------------------------------------------


class RateLimitHeaders(_Spec):
    """The names of the CRM's rate-limit headers (any may be unset). ``reset`` is seconds until
    the window resets or an epoch time: ``reset_is = "auto"`` tells them apart by size.

    The budget follows ``remaining``/``reset`` once it knows the CRM's limit: the connection's
    ``rate_limit``, or else the ``limit`` header over ``window`` (a count alone says nothing of
    its window). Without either, the headers are read but cannot pace anything."""

    remaining: str | None = "X-RateLimit-Remaining"
    reset: str | None = "X-RateLimit-Reset"
    reset_is: Literal["auto", "seconds", "epoch"] = "auto"
    limit: str | None = "X-RateLimit-Limit"
    window: Duration | None = None
    """The window the ``limit`` header counts over, e.g. ``"60s"``."""
    retry_after: str | None = "Retry-After"
