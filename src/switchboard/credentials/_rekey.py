"""Secret key rotation: re-encrypt every stored credential under the current key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.credentials._crypto import SecretBox
from switchboard.db import utcnow
from switchboard.models import ConnectionRow, Credential, Integration
from switchboard.settings import OAuth2Auth

if TYPE_CHECKING:
    from switchboard.config import Config


async def rekey(session: AsyncSession, box: SecretBox, config: Config) -> int:
    """Rewrite every ``credentials`` row under ``box``'s current key (its tokens and the
    fingerprint of the configured refresh token), and every stored connection's settings and
    integration's secrets; returns the rows rewritten.

    Run with the new key in ``SWITCHBOARD_SECRET_KEY`` and the old one in
    ``SWITCHBOARD_SECRET_KEY_PREVIOUS``; afterwards the old key can go. A row that no key
    decrypts raises :class:`SecretKeyError` and nothing is written (the caller's transaction)."""
    rows = (await session.scalars(select(Credential).with_for_update())).all()
    for row in rows:
        row.refresh_token = box.rotate(row.refresh_token)
        if row.access_token is not None:
            row.access_token = box.rotate(row.access_token)
        conn = config.connection(row.connection)
        auth = getattr(conn, "auth", None)
        if isinstance(auth, OAuth2Auth):
            configured = auth.refresh_token.get_secret_value()
            if row.config_fingerprint in box.fingerprints(configured):
                row.config_fingerprint = box.fingerprint(configured)
        row.updated_at = utcnow()
    # Connections' settings (their credentials) and integrations' app secrets.
    connections = (await session.scalars(select(ConnectionRow).with_for_update())).all()
    for connection in connections:
        connection.config = box.rotate(connection.config)
    integrations = (await session.scalars(select(Integration).with_for_update())).all()
    for integration in integrations:
        if integration.secrets:
            integration.secrets = box.rotate(integration.secrets)
    return len(rows) + len(connections) + len(integrations)
