"""Credential failures. Each names the connection and what the operator should do."""

from __future__ import annotations

from switchboard.errors import TerminalError, TransientError


class CredentialsError(TerminalError):
    """The connection's credentials were refused."""


class NeedsReauthorization(CredentialsError):
    """The connection needs re-authorisation: its refresh token or grant is no longer valid."""


class CredentialsUnavailable(TransientError):
    """The token service is unavailable; try again later."""
