"""A declarative REST CRM (``kind = "mapped_crm"``): base URL, auth, paths, page/per_page
pagination, an id field and a field map applied both ways. No provider-specific code."""

from switchboard.connectors.mapped_crm.client import MappedCrmClient, MappedCrmContacts
from switchboard.connectors.mapped_crm.mapping import FieldMap

__all__ = ["FieldMap", "MappedCrmClient", "MappedCrmContacts"]
