"""The declarative field map of a ``mapped_crm`` connection, applied in both directions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switchboard.connectors.crm import FIELDS, CrmContact, Fields, UnknownField, malformed


@dataclass(frozen=True)
class FieldMap:
    """``fields = {firstName = "acme_first_name", ...}`` (ours → theirs) plus the id field."""

    connection: str
    ours_to_theirs: dict[str, str]
    id_field: str = "id"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.ours_to_theirs) - set(FIELDS))
        if unknown:
            raise ValueError(
                f"connection {self.connection!r}: fields maps unknown hub fields {unknown} "
                f"(use {', '.join(FIELDS)})"
            )

    def to_vendor(self, fields: Fields) -> dict[str, str | None]:
        """Our fields under the CRM's names. A field the map does not know raises
        :class:`UnknownField` when it carries a value: it is never sent under a wrong name. An
        unmapped field set to ``None`` (clear it) is dropped: the CRM has nothing to clear."""
        out: dict[str, str | None] = {}
        for name, value in fields.items():
            vendor = self.ours_to_theirs.get(name)
            if vendor is None:
                if value is None and name in FIELDS:
                    continue
                raise UnknownField(name, self.connection)
            out[vendor] = value.strip().lower() if name == "email" and value else value
        return out

    def from_vendor(self, record: Any) -> CrmContact:
        """A CRM record as a :class:`CrmContact`: mapped fields only, the rest kept in ``raw``.
        These CRMs publish no timestamps, so ``created_at``/``updated_at`` are ``None``."""
        if not isinstance(record, dict) or record.get(self.id_field) in (None, ""):
            raise malformed(self.connection, f"a record without {self.id_field!r}", record)
        fields: Fields = {}
        for ours, vendor in self.ours_to_theirs.items():
            if vendor in record:
                value = record[vendor]
                fields[ours] = str(value) if value not in (None, "") else None
        return CrmContact(
            external_id=str(record[self.id_field]),
            fields=fields,
            created_at=None,
            updated_at=None,
            archived=False,
            raw=record,
        )
