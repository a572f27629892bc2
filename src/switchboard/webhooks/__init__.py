"""Inbound webhooks: ``POST /webhooks/{connection}`` dispatches to the receiver of the
connection's provider (``Provider.receiver``). Receivers verify the signature on the raw bytes,
record every delivery (the audit trail) and acknowledge exact redeliveries without a second
effect."""

from switchboard.webhooks.receivers import Receiver

__all__ = ["Receiver"]
