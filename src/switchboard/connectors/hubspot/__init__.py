"""HubSpot CRM v3 contacts: a thin typed client, pure mappings, and the ``CrmContacts`` adapter.

contacts = HubSpotContacts(outbound.client("hubspot"), conn, mode="job")
client = HubSpotClient(outbound.client("hubspot"), mode="job")    # raw endpoints (sync)
"""

from switchboard.connectors.hubspot.client import SEARCH_BUCKET, HubSpotClient
from switchboard.connectors.hubspot.contacts import HubSpotContacts
from switchboard.connectors.hubspot.mapping import from_record, to_properties

__all__ = ["SEARCH_BUCKET", "HubSpotClient", "HubSpotContacts", "from_record", "to_properties"]
