"""Switchboard: a self-hosted integration hub."""

__version__ = "0.1.0"
