"""A mapped CRM's webhook signature, checked as its :class:`SignatureScheme` describes it.

Default (ACME): ``X-Acme-Signature: sha256=<hex HMAC-SHA256 of the raw body>``. A scheme that signs
``{timestamp}.{body}`` also refuses a timestamp further than ``tolerance_seconds`` from now, so a
captured delivery cannot be replayed later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

from pydantic import SecretStr

from switchboard.connectors.mapped_crm.spec import SignatureScheme
from switchboard.parsing import ascii_int, same_signature

_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def sign(scheme: SignatureScheme, secret: str, body: bytes, timestamp: str | None = None) -> str:
    """The header value the CRM sends for ``body`` (``timestamp``: when the scheme signs one)."""
    message = body if scheme.signed == "body" else f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, _DIGESTS[scheme.algorithm]).digest()
    encoded = digest.hex() if scheme.encoding == "hex" else base64.b64encode(digest).decode()
    return scheme.prefix + encoded


def verify_signature(
    scheme: SignatureScheme,
    secret: SecretStr,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> str | None:
    """``None`` when the delivery is signed with ``secret``, else why it is refused (the 401's
    message, naming the header)."""
    presented = headers.get(scheme.header.lower(), headers.get(scheme.header, ""))
    timestamp: str | None = None
    if scheme.signed == "timestamp.body":
        assert scheme.timestamp_header is not None
        timestamp = headers.get(scheme.timestamp_header.lower(), "").strip()
        at = ascii_int(timestamp, max_digits=12)
        if not presented or at is None:
            return f"Missing {scheme.header} or {scheme.timestamp_header}"
        if abs((time.time() if now is None else now) - at) > scheme.tolerance_seconds:
            return f"Stale {scheme.timestamp_header}"
    expected = sign(scheme, secret.get_secret_value(), body, timestamp)
    if not same_signature(expected, presented.strip()):
        return f"Invalid {scheme.header}"
    return None
