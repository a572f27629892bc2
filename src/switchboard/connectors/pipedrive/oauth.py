"""Pipedrive's OAuth 2.0 endpoints (``docs/providers/pipedrive.md``).

Both live on ``oauth.pipedrive.com``, not on the API host. The token endpoint authenticates the
app with HTTP Basic (``client_id:client_secret``), and its answer carries ``api_domain``: the
company's own API host, which is the connection's ``base_url`` for apps installed that way.
"""

from __future__ import annotations

AUTHORIZE_URL = "https://oauth.pipedrive.com/oauth/authorize"
TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"  # noqa: S105 - an endpoint, not a secret
SCOPES = ("contacts:full",)
"""Persons read and written: Pipedrive's ``contacts:full`` scope (``contacts:read`` reads only)."""
