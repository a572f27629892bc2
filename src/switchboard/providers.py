"""Every provider the hub knows, in one explicit list.

A provider is one package, ``connectors/<provider>/``, whose ``provider.py`` defines its
:class:`~switchboard.connectors.base.Provider`; registering it is one line here. The connections
file accepts the ``kind`` of each (:mod:`switchboard.config`), and the generic layers (syncs,
webhooks, contacts, users, the outbound clients, the console) reach it through
``config.provider(name)``.
"""

from __future__ import annotations

from switchboard.connectors.base import Provider
from switchboard.connectors.hubspot.provider import PROVIDER as HUBSPOT
from switchboard.connectors.mapped_crm.provider import PROVIDER as MAPPED_CRM
from switchboard.connectors.pipedrive.provider import PROVIDER as PIPEDRIVE
from switchboard.connectors.todo_webhooks.provider import PROVIDER as TODO_WEBHOOKS
from switchboard.connectors.xml_feed.provider import PROVIDER as XML_FEED

PROVIDERS: tuple[Provider, ...] = (HUBSPOT, MAPPED_CRM, PIPEDRIVE, XML_FEED, TODO_WEBHOOKS)
