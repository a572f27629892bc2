"""Pipedrive persons (API v1) as a CRM, one package: settings (``settings``), a thin typed client
(``client``), pure mappings (``mapping``), the ``CrmContacts`` adapter (``contacts``), the persons
sync (``sync``), the webhooks v1 receiver (``webhooks``), the rate-limit header reader
(``ratelimit``), the OAuth endpoints (``oauth``), a simulator (``simulator``), and the
:class:`~switchboard.connectors.base.Provider` that registers it (``provider``).

Nothing is imported here: the hub's start loads only what the provider list needs, and the
simulator only where a sandbox runs.
"""
