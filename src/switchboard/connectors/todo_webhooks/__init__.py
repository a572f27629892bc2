"""The TODO app's webhooks (``kind = "todo_webhooks"``): an inbound-only source of task events,
signed the Standard Webhooks way."""
