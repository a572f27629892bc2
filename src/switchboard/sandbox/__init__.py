"""Faithful local simulators of every provider, with fault injection.

``Sandbox(only=[...], contacts=N).start()`` serves them on loopback ports and returns
``{name: base_url}``; :func:`zero_config` turns those URLs into a connections file.
"""

from switchboard.sandbox.acme import AcmeSimulator, AcmeWebhookSettings
from switchboard.sandbox.events import EventFeedSimulator, FeedSettings, generate_feed
from switchboard.sandbox.faults import Faults, FaultState, RequestLog, SandboxMiddleware
from switchboard.sandbox.hubspot import (
    HubSpotLimits,
    HubSpotSimulator,
    HubSpotWebhookSettings,
    Token,
    TokenRegistry,
    sign_v3,
)
from switchboard.sandbox.nango import NangoSimulator
from switchboard.sandbox.server import NAMES, Sandbox, zero_config
from switchboard.sandbox.todo import TodoSender, TodoSimulator, random_events, task_event

__all__ = [
    "NAMES",
    "AcmeSimulator",
    "AcmeWebhookSettings",
    "EventFeedSimulator",
    "FaultState",
    "Faults",
    "FeedSettings",
    "HubSpotLimits",
    "HubSpotSimulator",
    "HubSpotWebhookSettings",
    "NangoSimulator",
    "RequestLog",
    "Sandbox",
    "SandboxMiddleware",
    "TodoSender",
    "TodoSimulator",
    "Token",
    "TokenRegistry",
    "generate_feed",
    "random_events",
    "sign_v3",
    "task_event",
    "zero_config",
]
