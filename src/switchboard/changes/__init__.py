"""Outbound change events: the change feed, subscriptions and signed webhook deliveries."""
