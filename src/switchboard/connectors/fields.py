"""The hub's contact field names: the standard ones every CRM maps, and a connection's custom ones.

A CRM connection may name extra CRM properties as *custom fields* (``custom_fields = { plan =
"plan_tier" }``: ours → the provider's property, or a field path for ``mapped_crm``). In the
connectors' :data:`~switchboard.connectors.crm.Fields` they sit next to the standard fields, under
their own names (a name can never be a standard one, so the two cannot collide); the store keeps
them in ``contacts.fields`` and the API shows them under ``fields``.

``config.py`` uses this module, so it imports nothing of the hub's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator

FIELDS = ("email", "firstName", "lastName", "phone", "company")
"""The standard contact fields of the hub, in every CRM's terms after mapping."""

NAME = re.compile(r"[a-z][a-zA-Z0-9_]{0,62}")
"""A custom field's name: a lowercase letter, then letters, digits or ``_`` (63 at most)."""


def check_custom_fields(value: dict[str, str]) -> dict[str, str]:
    """``custom_fields`` of a connection: valid names, none a standard field, each mapped to its
    own non-empty provider property (two names on one property would write it twice)."""
    seen: dict[str, str] = {}
    for name, target in value.items():
        if not NAME.fullmatch(name):
            raise ValueError(
                f"custom field {name!r}: a name is a lowercase letter then letters, digits "
                "or _ (at most 63)"
            )
        if name in FIELDS:
            raise ValueError(f"custom field {name!r} is a standard field (use fields' own)")
        if not target.strip():
            raise ValueError(f"custom field {name!r}: the provider's property name is empty")
        if target in seen:
            raise ValueError(f"custom fields {seen[target]!r} and {name!r} both map to {target!r}")
        seen[target] = name
    return value


CustomFields = Annotated[dict[str, str], AfterValidator(check_custom_fields)]
"""``custom_fields`` of a CRM connection model, checked at start-up."""


def custom_fields_of(conn: object) -> Mapping[str, str]:
    """A connection's custom fields (ours → the provider's); empty for a connection that has
    none (every CRM connection model carries a ``custom_fields`` attribute)."""
    value = getattr(conn, "custom_fields", None)
    return value if isinstance(value, dict) else {}
