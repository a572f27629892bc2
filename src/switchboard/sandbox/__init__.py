"""Faithful local simulators of every provider, with fault injection.

``Sandbox(only=[...], contacts=N).start()`` serves them on loopback ports and returns
``{name: base_url}``; :func:`zero_config` turns those URLs into a connections file.

A provider's simulator lives in its provider's package (``connectors/<provider>/simulator``); the
names below are re-exported for convenience and load on first use: the simulators are built on
this package's ``faults`` and ``webhooks`` while ``server`` wires them in, so importing ``server``
here would make importing a simulator first a circular import (and every ``switchboard`` command
would load every simulator).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switchboard.connectors.mapped_crm.simulators.acme import AcmeSimulator, AcmeWebhookSettings
    from switchboard.connectors.todo_webhooks.simulator import (
        TodoSender,
        TodoSimulator,
        random_events,
        task_event,
    )
    from switchboard.connectors.xml_feed.simulator import (
        EventFeedSimulator,
        FeedSettings,
        generate_feed,
    )
    from switchboard.sandbox.faults import Faults, FaultState, RequestLog, SandboxMiddleware
    from switchboard.sandbox.nango import NangoSimulator
    from switchboard.sandbox.server import NAMES, Sandbox, zero_config

# name → the module that defines it (provider simulators live in their provider's package)
_ACME = "switchboard.connectors.mapped_crm.simulators.acme"
_EVENTS = "switchboard.connectors.xml_feed.simulator"
_TODO = "switchboard.connectors.todo_webhooks.simulator"
_EXPORTS = {
    "AcmeSimulator": _ACME,
    "AcmeWebhookSettings": _ACME,
    "EventFeedSimulator": _EVENTS,
    "FeedSettings": _EVENTS,
    "generate_feed": _EVENTS,
    "FaultState": f"{__name__}.faults",
    "Faults": f"{__name__}.faults",
    "RequestLog": f"{__name__}.faults",
    "SandboxMiddleware": f"{__name__}.faults",
    "NangoSimulator": f"{__name__}.nango",
    "NAMES": f"{__name__}.server",
    "Sandbox": f"{__name__}.server",
    "zero_config": f"{__name__}.server",
    "TodoSender": _TODO,
    "TodoSimulator": _TODO,
    "random_events": _TODO,
    "task_event": _TODO,
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
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
