"""The simulated HubSpot portal: its state, the Python API for tests, and the route table.

The endpoints live beside it (``contacts_api``, ``batch_api``, ``oauth``, ``control``) as
functions of the simulator and the request; this module authenticates, rate-limits and routes.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from switchboard.connectors.hubspot.simulator import batch_api, contacts_api, control, oauth
from switchboard.connectors.hubspot.simulator.errors import (
    AUTH_HELP,
    NOT_FOUND,
    HubSpotError,
    rate_limited,
    server_error,
    unavailable,
    validation_error,
)
from switchboard.connectors.hubspot.simulator.limits import (
    DailyCounter,
    HubSpotLimits,
    SlidingWindow,
)
from switchboard.connectors.hubspot.simulator.store import Contact, ContactStore, clean_properties
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
)
from switchboard.sandbox.faults import LOG_ENTRY, Faults, FaultState, RequestLog, SandboxMiddleware
from switchboard.sandbox.oauth import AuthorizationServer

CONTACTS = "/crm/v3/objects/contacts"
# What the well-known refresh token was granted.
SCOPES = ("oauth", "crm.objects.contacts.read", "crm.objects.contacts.write")

Handler = Callable[[Request], Awaitable[Response]]
# An endpoint of this module's siblings: a function of the simulator and the request.
Endpoint = Callable[["HubSpotSimulator", Request], Awaitable[Response]]


class HubSpotSimulator:
    """A HubSpot portal with contacts, an OAuth app, rate limits and webhook subscriptions."""

    def __init__(
        self,
        *,
        tokens: TokenRegistry | None = None,
        private_app_token: str | None = PRIVATE_APP_TOKEN,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        refresh_token: str = REFRESH_TOKEN,
        access_token_ttl: float = 1800,
        rotate_refresh_tokens: bool = True,
        limits: HubSpotLimits | None = None,
        contacts: int = 0,
        seed: int = 0,
        first_id: int | None = None,
        rejected_email_domains: Collection[str] = (),
        search_lag_ms: int = 0,
        webhooks: HubSpotWebhookSettings | None = None,
        faults: Faults | None = None,
        redirect_uris: Collection[str] | None = None,
        auto_approve: bool = False,
        code_ttl: float = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``redirect_uris``, ``auto_approve`` and ``code_ttl`` (seconds) configure the
        authorization-code grant (:mod:`switchboard.sandbox.oauth`); ``clock`` times its codes."""
        self.tokens = tokens or TokenRegistry()
        if private_app_token:
            self.tokens.add_private_app(private_app_token)
        self.client_id = client_id
        self.client_secret = client_secret
        # The OAuth apps that may install (a test may add one); the first is the sandbox's.
        self.clients = {client_id: client_secret}
        self.oauth = AuthorizationServer(
            self.clients,
            redirect_uris=redirect_uris,
            auto_approve=auto_approve,
            code_ttl=code_ttl,
            clock=clock,
        )
        self.access_token_ttl = access_token_ttl
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.refresh_lock = threading.Lock()
        self.search_lag_ms = search_lag_ms
        self.store = ContactStore()
        self.store.seed(contacts, seed=seed)
        if first_id is not None:
            self.store.next_id = max(self.store.next_id, first_id)
        self.rejected_email_domains = frozenset(d.lower() for d in rejected_email_domains)
        self.set_limits(limits or HubSpotLimits())
        self.webhooks = HubSpotWebhooks(webhooks)
        # Each refresh token belongs to an installation; the well-known one to the sandbox app
        # in the portal its webhooks name.
        self.refresh_tokens: dict[str, Installation] = {
            refresh_token: Installation(client_id, self.webhooks.settings.portal_id, SCOPES)
        }
        self.store.listeners.append(self.webhooks.on_changes)
        self.faults = FaultState(faults, seed=seed)
        self.log = RequestLog()
        self.app: ASGIApp = SandboxMiddleware(
            self._build(),
            faults=self.faults,
            log=self.log,
            throttled=lambda: rate_limited("TEN_SECONDLY_ROLLING"),
            unavailable=unavailable,
            error=server_error,
        )

    def set_limits(self, limits: HubSpotLimits) -> None:
        """Apply new limits and start every window afresh."""
        self.limits = limits
        self._rolling = SlidingWindow(limits.per_interval, limits.interval_ms / 1000)
        self._search = SlidingWindow(limits.search_per_second, limits.search_window_ms / 1000)
        self._daily = DailyCounter(limits.daily)

    # Python API for tests: the changes a user makes in the HubSpot UI.

    def ui_create(self, properties: dict[str, Any]) -> dict[str, Any]:
        props = clean_properties(
            properties, partial=False, rejected_domains=self.rejected_email_domains
        )
        return self.store.create(props, source="CRM_UI").render(props)

    def ui_update(self, contact_id: int | str, properties: dict[str, Any] | None) -> dict[str, Any]:
        contact = self.must(str(contact_id), None)
        props = clean_properties(
            properties, partial=True, rejected_domains=self.rejected_email_domains
        )
        return self.store.update(contact, props, source="CRM_UI").render(props)

    def ui_delete(self, contact_id: int | str) -> None:
        self.store.archive(self.must(str(contact_id), None), source="CRM_UI")

    def ui_merge(self, primary_id: int | str, merged_id: int | str) -> dict[str, Any]:
        primary = self.must(str(primary_id), None)
        merged = self.must(str(merged_id), None)
        return self.store.merge(primary, merged, source="CRM_UI").render()

    def must(self, key: str, id_property: str | None, *, archived: bool = False) -> Contact:
        """The contact ``key`` names, or HubSpot's 404 (400 for a non-unique ``id_property``)."""
        if id_property not in (None, "email", "hs_object_id"):
            raise validation_error(f"Property {id_property} is not a unique identifier property.")
        contact = self.store.find(key, id_property, archived=archived)
        if contact is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", NOT_FOUND, context={"id": [key]})
        return contact

    # auth and limits

    def _authenticate(self, request: Request) -> Token:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            raise HubSpotError(401, "INVALID_AUTHENTICATION", AUTH_HELP)
        if token.expires_at is not None and token.expires_at <= time.time():
            ago = max(0, int(time.time() - token.expires_at))
            amount = f"{ago} second(s)" if ago < 86_400 else f"{ago // 86_400} day(s)"
            expired = datetime.fromtimestamp(token.expires_at, UTC).isoformat()[:19] + "Z"
            raise HubSpotError(
                401,
                "EXPIRED_AUTHENTICATION",
                f"The OAuth token used to make this call expired {amount} ago.",
                context={"expire time": [expired]},
            )
        return token

    def _api(self, handler: Endpoint, *, search: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            headers: dict[str, str] = {}
            response: Response
            # The request log's entry (a throwaway dict when served without the middleware).
            entry: dict[str, Any] = request.scope.get(LOG_ENTRY, {})
            try:
                token = self._authenticate(request)
                allowed, daily_left = self._daily.hit()
                if not allowed:
                    return rate_limited("DAILY")
                if search:
                    # Search has its own per-second budget and sends no rate-limit headers.
                    ok, _, at = self._search.hit(token.rate_key)
                    if not ok:
                        return rate_limited("SECONDLY")
                    entry["admitted_at"] = at
                else:
                    ok, remaining, at = self._rolling.hit(token.rate_key)
                    headers = {
                        "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.limits.interval_ms),
                        "X-HubSpot-RateLimit-Max": str(self.limits.per_interval),
                        "X-HubSpot-RateLimit-Remaining": str(remaining),
                    }
                    if token.kind == "private_app":
                        headers["X-HubSpot-RateLimit-Daily"] = str(self.limits.daily)
                        headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(daily_left)
                    if not ok:
                        throttled = rate_limited("TEN_SECONDLY_ROLLING")
                        throttled.headers.update(headers)
                        return throttled
                    entry["admitted_at"] = at
                response = await handler(self, request)
            except HubSpotError as exc:
                response = exc.response()
            response.headers.update(headers)
            response.headers["X-HubSpot-Correlation-Id"] = str(uuid.uuid4())
            return response

        return endpoint

    def _control(self, handler: Endpoint) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(self, request)
            except HubSpotError as exc:
                return exc.response()
            except ValidationError as exc:
                return JSONResponse(
                    {"detail": json.loads(exc.json(include_url=False))}, status_code=422
                )

        return endpoint

    def _build(self) -> Starlette:
        api, ctl = self._api, self._control
        routes = [
            Route(CONTACTS, api(contacts_api.list_contacts), methods=["GET"]),
            Route(CONTACTS, api(contacts_api.create_contact), methods=["POST"]),
            Route(f"{CONTACTS}/search", api(contacts_api.search, search=True), methods=["POST"]),
            Route(f"{CONTACTS}/merge", api(contacts_api.merge_contacts), methods=["POST"]),
            Route(f"{CONTACTS}/batch/read", api(batch_api.batch_read), methods=["POST"]),
            Route(f"{CONTACTS}/batch/create", api(batch_api.batch_create), methods=["POST"]),
            Route(f"{CONTACTS}/batch/update", api(batch_api.batch_update), methods=["POST"]),
            Route(f"{CONTACTS}/batch/upsert", api(batch_api.batch_upsert), methods=["POST"]),
            Route(f"{CONTACTS}/batch/archive", api(batch_api.batch_archive), methods=["POST"]),
            Route(CONTACTS + "/{contact_id}", api(contacts_api.get_contact), methods=["GET"]),
            Route(CONTACTS + "/{contact_id}", api(contacts_api.update_contact), methods=["PATCH"]),
            Route(
                CONTACTS + "/{contact_id}", api(contacts_api.archive_contact), methods=["DELETE"]
            ),
            Route("/oauth/v1/token", partial(oauth.oauth_token, self), methods=["POST"]),
            Route("/oauth/authorize", partial(oauth.authorize, self), methods=["GET", "POST"]),
            Route(
                "/oauth/v1/access-tokens/{token}",
                partial(oauth.access_token_info, self),
                methods=["GET"],
            ),
            Route("/_sandbox/hubspot/contacts", ctl(control.control_create), methods=["POST"]),
            Route("/_sandbox/hubspot/contacts/merge", ctl(control.control_merge), methods=["POST"]),
            Route(
                "/_sandbox/hubspot/contacts/{contact_id}",
                ctl(control.control_update),
                methods=["PATCH"],
            ),
            Route(
                "/_sandbox/hubspot/contacts/{contact_id}",
                ctl(control.control_delete),
                methods=["DELETE"],
            ),
            Route("/_sandbox/hubspot/state", ctl(control.control_state), methods=["GET"]),
            Route(
                "/_sandbox/hubspot/limits",
                ctl(control.control_limits),
                methods=["GET", "PUT", "PATCH"],
            ),
            Route("/_sandbox/hubspot/tokens", ctl(control.control_tokens), methods=["POST"]),
            Route("/_sandbox/hubspot/oauth", ctl(control.control_oauth), methods=["GET", "PATCH"]),
            Route("/_sandbox/hubspot/tokens/expire", ctl(control.control_expire), methods=["POST"]),
            Route(
                "/_sandbox/hubspot/webhooks",
                ctl(control.control_webhooks),
                methods=["GET", "PUT", "PATCH", "DELETE"],
            ),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await self.webhooks.start()
            try:
                yield
            finally:
                await self.webhooks.stop()

        return Starlette(routes=routes, lifespan=lifespan)
