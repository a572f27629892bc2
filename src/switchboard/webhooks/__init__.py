"""Inbound webhooks: ``POST /webhooks/{connection}`` dispatches to the receiver registered for
the connection's kind. Receivers verify the signature on the raw bytes, record every delivery
(the audit trail) and acknowledge exact redeliveries without a second effect."""

from switchboard.webhooks.receivers import Receiver, receiver

__all__ = ["Receiver", "receiver"]
