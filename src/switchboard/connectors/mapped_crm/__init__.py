"""A declarative REST CRM (``kind = "mapped_crm"``): base URL, auth, paths, a paginator, a record
selector, field paths applied both ways, the webhook signature scheme and rate-limit header
names, all configuration (:mod:`.spec`). No provider-specific code.

The client is imported on first use: ``config.py`` imports :mod:`.spec`, and the client imports
``config.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switchboard.connectors.mapped_crm.client import MappedCrmClient, MappedCrmContacts
    from switchboard.connectors.mapped_crm.mapping import FieldMap

__all__ = ["FieldMap", "MappedCrmClient", "MappedCrmContacts"]


def __getattr__(name: str) -> Any:
    if name in ("MappedCrmClient", "MappedCrmContacts"):
        from switchboard.connectors.mapped_crm import client

        return getattr(client, name)
    if name == "FieldMap":
        from switchboard.connectors.mapped_crm.mapping import FieldMap

        return FieldMap
    raise AttributeError(name)
