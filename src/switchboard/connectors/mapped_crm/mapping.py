"""The declarative field map of a ``mapped_crm`` connection, applied in both directions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from switchboard.connectors.crm import FIELDS, CrmContact, Fields, UnknownField, malformed
from switchboard.connectors.mapped_crm.paths import MISSING, FieldPath, parse_path, writable
from switchboard.connectors.mapped_crm.spec import WebhookEvents


@dataclass(frozen=True)
class FieldMap:
    """``fields = {firstName = "acme_first_name", email = "emails[primary].value", ...}`` (ours →
    a field path into theirs), the id path and, optionally, the path of the record's last
    change (ISO 8601, or epoch seconds or milliseconds). ``custom``: the connection's custom
    fields (ours → a field path), read and written as the standard ones are."""

    connection: str
    ours_to_theirs: dict[str, str]
    id_field: str = "id"
    updated_at_field: str | None = None
    custom: dict[str, str] = field(default_factory=dict)
    _paths: dict[str, FieldPath] = field(init=False, repr=False, compare=False)
    _id: FieldPath = field(init=False, repr=False, compare=False)
    _updated: FieldPath | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.ours_to_theirs) - set(FIELDS))
        if unknown:
            raise ValueError(
                f"connection {self.connection!r}: fields maps unknown hub fields {unknown} "
                f"(use {', '.join(FIELDS)})"
            )
        mapped = {**self.ours_to_theirs, **self.custom}
        paths = {ours: writable(parse_path(p)) for ours, p in mapped.items()}
        object.__setattr__(self, "_paths", paths)
        object.__setattr__(self, "_id", parse_path(self.id_field))
        updated = parse_path(self.updated_at_field) if self.updated_at_field else None
        object.__setattr__(self, "_updated", updated)

    def to_vendor(self, fields: Fields) -> dict[str, Any]:
        """Our fields in the CRM's shape (nested paths build nested objects). A field the map
        does not know raises :class:`UnknownField` when it carries a value: it is never sent
        under a wrong name. An unmapped field set to ``None`` (clear it) is dropped: the CRM has
        nothing to clear."""
        out: dict[str, Any] = {}
        for name, value in fields.items():
            path = self._paths.get(name)
            if path is None:
                if value is None and name in FIELDS:
                    continue
                raise UnknownField(name, self.connection)
            path.write(out, value.strip().lower() if name == "email" and value else value)
        return out

    def read(self, name: str, record: Any) -> Any:
        """Our field ``name`` read from a CRM record (:data:`MISSING` if absent or unmapped)."""
        path = self._paths.get(name)
        return MISSING if path is None else path.read(record)

    def id_value(self, record: Any) -> Any:
        """The record's id as it is in the record (:data:`MISSING` if absent)."""
        return self._id.read(record)

    def record_id(self, record: Any) -> str | None:
        value = self._id.read(record)
        return None if value is MISSING or value in (None, "") else str(value)

    def from_vendor(self, record: Any) -> CrmContact:
        """A CRM record as a :class:`CrmContact`: mapped fields only, the rest kept in ``raw``.
        ``created_at`` is unknown; ``updated_at`` is read when ``updated_at_field`` is set."""
        record_id = self.record_id(record) if isinstance(record, dict) else None
        if record_id is None:
            raise malformed(self.connection, f"a record without {self.id_field!r}", record)
        fields: Fields = {}
        for ours, path in self._paths.items():
            value = path.read(record)
            if value is not MISSING:
                fields[ours] = str(value) if value not in (None, "") else None
        updated_at = None
        if self._updated is not None:
            raw = self._updated.read(record)
            updated_at = None if raw is MISSING or raw is None else self._timestamp(raw, record)
        return CrmContact(
            external_id=record_id,
            fields=fields,
            created_at=None,
            updated_at=updated_at,
            archived=False,
            raw=record,
        )

    def _timestamp(self, value: Any, record: Any) -> datetime:
        try:
            return parse_time(value)
        except ValueError:
            raise malformed(
                self.connection, f"{self.updated_at_field!r} is not a timestamp", record
            ) from None


def parse_time(value: Any) -> datetime:
    """ISO 8601 (naive: UTC), or epoch seconds, or epoch milliseconds (numbers past 10^11)."""
    if isinstance(value, bool):
        raise ValueError("not a timestamp")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError):
            raise ValueError("not a timestamp") from None
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise ValueError("not a timestamp")


def event_identity(events: WebhookEvents, fmap: FieldMap, body: Any) -> tuple[Any, Any]:
    """(event id, record id) of a webhook body, each ``None`` when absent: the receiver checks
    them as it checks any provider's ids."""
    if not isinstance(body, dict):
        return None, None
    event_id = parse_path(events.id_path).read(body)
    record = parse_path(events.record_path).read(body)
    record_id = fmap.id_value(record) if isinstance(record, dict) else None
    return (None if event_id is MISSING else event_id), (
        None if record_id is MISSING else record_id
    )
