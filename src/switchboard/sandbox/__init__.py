"""Faithful local simulators of every provider, with fault injection.

``Sandbox(only=[...], contacts=N).start()`` serves them on loopback ports and returns
``{name: base_url}``; :func:`zero_config` turns those URLs into a connections file.

The names below load on first use: the HubSpot simulator
(``switchboard.connectors.hubspot.simulator``) is built on this package's ``faults`` and
``webhooks`` while ``server`` wires it in, so importing ``server`` here would make importing the
simulator first a circular import (and every ``switchboard`` command would load every simulator).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switchboard.sandbox.acme import AcmeSimulator, AcmeWebhookSettings
    from switchboard.sandbox.events import EventFeedSimulator, FeedSettings, generate_feed
    from switchboard.sandbox.faults import Faults, FaultState, RequestLog, SandboxMiddleware
    from switchboard.sandbox.nango import NangoSimulator
    from switchboard.sandbox.server import NAMES, Sandbox, zero_config
    from switchboard.sandbox.todo import TodoSender, TodoSimulator, random_events, task_event

# name → the module (of this package) that defines it
_EXPORTS = {
    "AcmeSimulator": "acme",
    "AcmeWebhookSettings": "acme",
    "EventFeedSimulator": "events",
    "FeedSettings": "events",
    "generate_feed": "events",
    "FaultState": "faults",
    "Faults": "faults",
    "RequestLog": "faults",
    "SandboxMiddleware": "faults",
    "NangoSimulator": "nango",
    "NAMES": "server",
    "Sandbox": "server",
    "zero_config": "server",
    "TodoSender": "todo",
    "TodoSimulator": "todo",
    "random_events": "todo",
    "task_event": "todo",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "NAMES",
    "AcmeSimulator",
    "AcmeWebhookSettings",
    "EventFeedSimulator",
    "FaultState",
    "Faults",
    "FeedSettings",
    "NangoSimulator",
    "RequestLog",
    "Sandbox",
    "SandboxMiddleware",
    "TodoSender",
    "TodoSimulator",
    "generate_feed",
    "random_events",
    "task_event",
    "zero_config",
]
