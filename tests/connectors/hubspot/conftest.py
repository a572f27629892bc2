"""Fixtures for the HubSpot simulator's tests: the sandbox tests' webhook receiver."""

from tests.sandbox.conftest import receiver

__all__ = ["receiver"]
