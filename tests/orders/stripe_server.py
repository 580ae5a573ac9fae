"""A local stand-in for the few Stripe API calls livemall makes, for the real `stripe`
library to talk to (`LIVEMALL_STRIPE_API_BASE`): the fake sits at the outside edge only.

- `POST /v1/checkout/sessions` (form-encoded, as the library sends it) → a Checkout
  Session shaped like docs.stripe.com/api/checkout/sessions/object;
- `GET /v1/checkout/sessions/{id}` → that session, or Stripe's 404 `resource_missing`;
- `POST /v1/checkout/sessions/{id}/expire` → the session, now `expired` (docs.stripe.com/
  api/checkout/sessions/expire: only an `open` one; any other is a 400).

Like Stripe it wants `Authorization: Bearer <secret key>`, remembers each
`Idempotency-Key` and answers a repeat of it with the same object (header
`Idempotent-Replayed: true`) — or `400 idempotency_error` when the repeat's parameters
differ — and checks amounts the way Stripe documents (three-decimal currencies end in
0; ISK and HUF in whole units). It can be told to answer 500 or to hang (a timeout),
and it builds the events Stripe would send, for the test to sign.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CURRENCIES = frozenset("usd eur krw jpy rub cny vnd huf isk kwd bhd gbp".split())  # what this fake takes


def error(status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None,
          param: str | None = None) -> web.Response:
    body: dict[str, Any] = {"type": kind, "message": message}
    if code:
        body["code"] = code
    if param:
        body["param"] = param
    return web.json_response({"error": body}, status=status)


@dataclass
class StripeServer:
    secret_key: str
    base_url: str = ""  # set once it listens
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    creates: list[dict[str, Any]] = field(default_factory=list)  # every create request: key, params
    retrieves: list[str] = field(default_factory=list)
    expires: list[str] = field(default_factory=list)  # every expire request's session id
    fail_next: int = 0  # answer this many requests with 500
    hang: bool = False  # hold requests until released (the client times out)
    _keys: dict[str, tuple[dict[str, str], dict[str, Any]]] = field(default_factory=dict)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_post("/v1/checkout/sessions", self._create)
        app.router.add_get("/v1/checkout/sessions/{id}", self._retrieve)
        app.router.add_post("/v1/checkout/sessions/{id}/expire", self._expire)
        return app

    def release(self) -> None:
        """Let hanging requests finish (call before the server stops)."""
        self._released.set()

    @web.middleware
    async def _gate(self, request: web.Request, handler) -> web.StreamResponse:
        if self.hang:
            await self._released.wait()
            return error(500, "released after hanging", kind="api_error")
        if self.fail_next > 0:
            self.fail_next -= 1
            return error(500, "An unknown error occurred", kind="api_error")
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return error(401, "Invalid API Key provided")
        return await handler(request)

    async def _create(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        key = request.headers.get("Idempotency-Key")
        self.creates.append({"key": key, "params": form})
        if key is not None and key in self._keys:
            params, session = self._keys[key]
            if params != form:
                return error(400, "Keys for idempotent requests can only be used with the same parameters they "
                                  "were first used with.", kind="idempotency_error")
            response = web.json_response(session)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        currency = str(form.get("line_items[0][price_data][currency]", ""))
        raw_amount = str(form.get("line_items[0][price_data][unit_amount]", ""))
        quantity = int(str(form.get("line_items[0][quantity]", "1")))
        if currency not in CURRENCIES:
            return error(400, f"Invalid currency: {currency}.", param="line_items[0][price_data][currency]")
        if not raw_amount.isdigit():
            return error(400, "Invalid integer: unit_amount", param="line_items[0][price_data][unit_amount]")
        amount = int(raw_amount)
        if currency in ("kwd", "bhd") and amount % 10 or currency in ("isk", "huf") and amount % 100:
            return error(400, f"Invalid amount for {currency}.", code="invalid_charge_amount_no_decimal_compatible",
                         param="line_items[0][price_data][unit_amount]")
        now = int(time.time())
        session_id = f"cs_test_{next(self._ids):04d}{secrets.token_hex(8)}"
        session = {
            "id": session_id, "object": "checkout.session", "livemode": False, "mode": "payment",
            "amount_subtotal": amount * quantity, "amount_total": amount * quantity, "currency": currency,
            "client_reference_id": form.get("client_reference_id"),
            "metadata": {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")},
            "payment_intent": None, "payment_status": "unpaid", "status": "open",
            "success_url": form.get("success_url"), "cancel_url": form.get("cancel_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}", "created": now, "expires_at": now + 86400,
        }
        self.sessions[session_id] = session
        if key is not None:
            self._keys[key] = (form, session)
        return web.json_response(session)

    async def _retrieve(self, request: web.Request) -> web.Response:
        session_id = request.match_info["id"]
        self.retrieves.append(session_id)
        session = self.sessions.get(session_id)
        if session is None:
            return error(404, f"No such checkout.session: '{session_id}'", code="resource_missing", param="session")
        return web.json_response(session)

    async def _expire(self, request: web.Request) -> web.Response:
        session_id = request.match_info["id"]
        self.expires.append(session_id)
        session = self.sessions.get(session_id)
        if session is None:
            return error(404, f"No such checkout.session: '{session_id}'", code="resource_missing", param="session")
        if session["status"] != "open":
            return error(400, 'Only Checkout Sessions with a status in ["open"] can be expired.')
        return web.json_response(self.expire(session_id))

    # --- what Stripe does after the buyer acts ---------------------------------------

    def pay(self, session_id: str, *, payment_status: str = "paid") -> dict[str, Any]:
        session = self.sessions[session_id]
        session.update(status="complete", payment_status=payment_status,
                       payment_intent=f"pi_test_{secrets.token_hex(8)}")
        return session

    def expire(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        session.update(status="expired", url=None)
        return session

    def event(self, kind: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        """An event as Stripe delivers it (docs.stripe.com/api/events/object)."""
        return {
            "id": event_id or f"evt_test_{secrets.token_hex(12)}", "object": "event",
            "api_version": "2025-01-27.acacia", "created": int(time.time()), "livemode": False,
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}, "type": kind,
            "data": {"object": dict(obj)},
        }
