"""HubSpot simulator: CRM v3 contacts, search, OAuth, rate limits, signed webhooks.

Wire facts: ``shared/providers/HUBSPOT.md``. The official ``hubspot-api-client`` SDK works against
it unchanged (``hubspot.Client.create(access_token="pat-sandbox", host=base_url)``).

OAuth (``docs/providers/hubspot.md``): ``GET /oauth/authorize`` (``client_id``, ``redirect_uri``,
``scope``, ``state``, ``code_challenge`` + ``code_challenge_method=S256``) shows a consent page
whose Allow/Deny post back and redirect; ``POST /oauth/v1/token`` takes the authorization-code and
refresh-token grants; ``GET /oauth/v1/access-tokens/{token}`` names the portal (``hub_id``) that
granted a token. The portal a code is for is the one picked on the page; by default, and for
the well-known refresh token, the ``portal_id`` the webhooks carry.

Control endpoints (no auth, no rate limit, no faults), for tests and for playing "a user in the
HubSpot UI":

* ``POST /_sandbox/hubspot/contacts`` ``{"properties": {...}}`` → 201 the contact;
  ``PATCH /_sandbox/hubspot/contacts/{id}`` ``{"properties": {...}}`` → 200;
  ``DELETE /_sandbox/hubspot/contacts/{id}`` → 204;
  ``POST /_sandbox/hubspot/contacts/merge`` ``{"primaryObjectId", "objectIdToMerge"}`` → 200.
  These fire webhooks with ``changeSource: "CRM_UI"``.
* ``GET /_sandbox/hubspot/state`` → ``{"contacts", "archived", "limits", "webhooks"}``.
* ``GET|PUT|PATCH /_sandbox/hubspot/limits`` → :class:`HubSpotLimits` (PUT/PATCH also resets the
  windows).
* ``POST /_sandbox/hubspot/tokens`` ``{"token", "expires_in"?}`` registers an access token;
  ``POST /_sandbox/hubspot/tokens/expire`` ``{"token"?}`` expires one (or every OAuth) token.
* ``GET|PATCH /_sandbox/hubspot/oauth`` ``{"auto_approve"?, "redirect_uris"?}`` → those settings,
  the codes issued (``grants``) and every authorize and exchange (``events``).
* ``GET|PUT|PATCH /_sandbox/hubspot/webhooks`` → :class:`HubSpotWebhookSettings` plus delivery
  ``stats`` and ``attempts``; ``DELETE`` clears the attempt log.

Modules: ``app`` (the simulator and its routes), ``contacts_api``, ``batch_api``, ``oauth`` and
``control`` (the endpoints), ``store`` (contacts and property validation), ``search``, ``limits``,
``tokens``, ``webhooks`` (settings, signatures, the sender), ``errors`` and ``params``.
"""

from switchboard.connectors.hubspot.simulator.app import HubSpotSimulator
from switchboard.connectors.hubspot.simulator.errors import HubSpotError
from switchboard.connectors.hubspot.simulator.limits import HubSpotLimits, SlidingWindow
from switchboard.connectors.hubspot.simulator.store import Contact, ContactStore
from switchboard.connectors.hubspot.simulator.tokens import (
    CLIENT_ID,
    CLIENT_SECRET,
    PRIVATE_APP_TOKEN,
    REFRESH_TOKEN,
    Installation,
    Token,
    TokenRegistry,
)
from switchboard.connectors.hubspot.simulator.webhooks import (
    HubSpotWebhooks,
    HubSpotWebhookSettings,
    sign_v1,
    sign_v3,
)

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "PRIVATE_APP_TOKEN",
    "REFRESH_TOKEN",
    "Contact",
    "ContactStore",
    "HubSpotError",
    "HubSpotLimits",
    "HubSpotSimulator",
    "HubSpotWebhookSettings",
    "HubSpotWebhooks",
    "Installation",
    "SlidingWindow",
    "Token",
    "TokenRegistry",
    "sign_v1",
    "sign_v3",
]
