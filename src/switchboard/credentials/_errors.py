"""Credential failures. Each names the connection and what the operator should do."""

from __future__ import annotations

import math
from typing import Any

from switchboard.errors import TerminalError, TransientError


class CredentialsError(TerminalError):
    """The connection's credentials were refused."""

    def __init__(
        self,
        message: str | None = None,
        *,
        connection: str,
        provider_status: int | None = None,
        provider_message: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.connection = connection
        self.provider_status = provider_status
        self.provider_message = provider_message
        self.provider_body = body


class NeedsReauthorization(CredentialsError):
    """The connection needs re-authorisation: its refresh token or grant is no longer valid."""


class CredentialsUnavailable(TransientError):
    """The token service is unavailable; try again later."""

    def __init__(
        self,
        message: str | None = None,
        *,
        connection: str,
        provider_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else None
        super().__init__(message, retry_after=retry_after, headers=headers)
        self.connection = connection
        self.provider_status = provider_status
