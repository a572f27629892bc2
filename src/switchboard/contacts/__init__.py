"""Contacts: the hub's store of CRM contacts, its sync engine, the ``/contacts`` API (reads
from the store, writes through to the CRM) and CRM webhooks."""
