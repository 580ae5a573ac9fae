"""Stripe: a real card processor, through the official `stripe` library (Checkout Sessions).

Flow: `POST /api/orders/{id}/pay {"provider": "stripe"}` creates a Checkout Session for
the pending order's total and answers its `redirect_url` (Stripe's hosted card page);
the buyer pays there and Stripe sends them back to the order (`success_url` /
`cancel_url`). The order becomes paid only by the signed webhook
`checkout.session.completed` (or `checkout.session.async_payment_succeeded` for a
method that settles later), never by the redirect, which anyone can type.

Why Checkout Sessions and not a bare PaymentIntent: the card form is Stripe's page
(no card data touches this server, and no card UI of ours to build), and one session
object carries the amount, the currency, our order id and the URLs back to the order.

Idempotency: every create carries an `idempotency_key` derived from the order (its id
and its creation time, so two databases sharing one Stripe account never collide), so
a buyer pressing Pay twice, a retry after a timeout, or the library's own network
retries all get the same session — one order, at most one open session. A second Pay
first reads the stored session back (`GET /v1/checkout/sessions/{id}`): an open or
completed one is answered again; only an expired one is replaced, under a new key
naming the session it replaces.

Money: the project keeps integer minor units in the currency's own precision as the
pages format it (Babel / CLDR: USD 2 digits, KRW and JPY 0 — so 32,000 won is stored
as 32000). Stripe wants "the smallest unit" as *it* defines it, which mostly agrees but
not always: zero-decimal currencies (KRW, JPY, VND, …) go as they are; ISK and HUF are
whole-unit currencies for CLDR but two-decimal in Stripe's API (×100, and Stripe takes
whole units only); the three-decimal ones (KWD, BHD, …) must end in 0. `to_stripe`
and `from_stripe` convert exactly or refuse (422), never round.

Failures: Stripe unreachable or slow → `ProcessorUnavailable` (503); Stripe answering
5xx, garbage, or refusing our key → `ProcessorError` (502); Stripe refusing the request
(an unsupported currency, an amount below its minimum) → `PaymentRefused` (422 with
Stripe's message). In each case nothing is written: the order stays pending.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import stripe
from babel.numbers import get_currency_precision

from orders.errors import DomainError, Invalid, Unavailable
from orders.models import Order
from orders.payments import FAILED, IGNORED, MAX_EVENT_ID, SUCCEEDED, AmountMismatch, BadSignature, WebhookEvent

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Stripe-Signature"
NAME = "stripe"

# docs.stripe.com/currencies: "zero-decimal" (the amount is in whole units) ...
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
# ... three-decimal, whose last digit must be 0 "for compatibility with payment partners" ...
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
# ... and special cases: two-decimal in the API but charged in whole units only
# (an ISK or HUF amount must be divisible by 100).
WHOLE_UNITS_ONLY = frozenset({"ISK", "HUF"})

PAID_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
FAILED_EVENTS = frozenset({"checkout.session.async_payment_failed", "checkout.session.expired"})


class CurrencyNotSupported(Invalid):
    code = "currency_not_supported"


class PaymentRefused(Invalid):
    """Stripe refused the request itself (4xx): an unsupported currency, a too-small amount."""

    code = "payment_refused"


class ProcessorUnavailable(Unavailable):
    """Stripe could not be reached in time (connection refused, timeout, rate-limited): 503."""

    code = "payment_processor_unavailable"


class ProcessorError(DomainError):
    """Stripe answered, but not usefully (5xx, a malformed body, our key refused): 502."""

    code = "payment_processor_error"


class StripeMisconfigured(ValueError):
    """Half a Stripe configuration: refuse to start rather than take money we cannot confirm."""


def project_exponent(currency: str) -> int:
    """Fraction digits of the project's minor units (the precision the pages format with)."""
    return get_currency_precision(currency)


def stripe_exponent(currency: str) -> int:
    """Fraction digits of Stripe's `amount` in this currency."""
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def to_stripe(minor: int, currency: str) -> int:
    """The project's minor units → Stripe's `amount`; CurrencyNotSupported when not exact."""
    currency = currency.upper()
    shift = stripe_exponent(currency) - project_exponent(currency)
    if shift < 0:  # the shop keeps finer units than Stripe takes: refused, whatever the amount
        raise CurrencyNotSupported(f"Stripe does not take {currency} amounts as this shop keeps them (to "
                                   f"{project_exponent(currency)} decimals); pay by invoice", field="currency")
    amount = minor * 10**shift
    if currency in THREE_DECIMAL and amount % 10:
        raise CurrencyNotSupported(f"Stripe takes {currency} amounts ending in 0 only", field="currency")
    if currency in WHOLE_UNITS_ONLY and amount % 100:
        raise CurrencyNotSupported(f"Stripe takes whole {currency} only", field="currency")
    return amount


def from_stripe(amount: int, currency: str) -> int:
    """Stripe's `amount` → the project's minor units; AmountMismatch when not exact."""
    currency = currency.upper()
    shift = stripe_exponent(currency) - project_exponent(currency)
    if shift <= 0:
        return amount * 10**-shift
    minor, rest = divmod(amount, 10**shift)
    if rest:
        raise AmountMismatch(f"Stripe reported {amount} in {currency}, a fraction of the smallest unit this shop keeps")
    return minor


def check_config(secret_key: str, webhook_secret: str, public_url: str) -> bool:
    """Whether Stripe is to be offered: False with no keys; StripeMisconfigured with half a setup."""
    if not secret_key and not webhook_secret:
        return False
    if not (secret_key and webhook_secret):
        raise StripeMisconfigured(
            "Stripe needs both LIVEMALL_STRIPE_SECRET_KEY and LIVEMALL_STRIPE_WEBHOOK_SECRET (without the webhook "
            "secret a paid order could never be confirmed); set both or neither")
    if not public_url.strip().lower().startswith(("http://", "https://")):
        raise StripeMisconfigured(
            "Stripe sends the buyer back to the order at an absolute URL: set LIVEMALL_PUBLIC_URL "
            "(e.g. https://live.example.org)")
    return True


class StripeProvider:
    """`orders.payments.PaymentProvider` over Stripe Checkout. Owns an aiohttp session
    (the library's `AIOHTTPClient`); `aclose` it on shutdown."""

    name = NAME

    def __init__(self, secret_key: str, webhook_secret: str, public_url: str, *, tolerance: int = 300,
                 api_base: str = "", timeout: float = 20.0, max_network_retries: int = 2,
                 order_path: str = "/orders/{order_id}") -> None:
        if not check_config(secret_key, webhook_secret, public_url):
            raise StripeMisconfigured("the Stripe provider needs its keys")
        self._webhook_secret = webhook_secret
        self.tolerance = tolerance
        self._order_url = public_url.rstrip("/") + order_path
        # The library's own asyncio client; never its global `stripe.api_key` / `api_base`,
        # so two apps in one process (tests, several shops) keep their own settings.
        # A float: aiohttp takes it as its total timeout (orders imports no transport).
        self._http = stripe.AIOHTTPClient(timeout=timeout)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            http_client=self._http,
            max_network_retries=max_network_retries,  # retried with the same Idempotency-Key
        )

    async def aclose(self) -> None:
        await self._http.close_async()

    def accepts(self, currency: str) -> bool:
        """Whether amounts in this currency can be sent to Stripe (for the list of providers
        offered; an amount's last digits are checked at checkout, and Stripe has the last
        word on which currencies the account takes)."""
        return stripe_exponent(currency.upper()) >= project_exponent(currency.upper())

    # --- checkout ---------------------------------------------------------------------

    async def checkout(self, order: Order) -> dict[str, Any]:
        amount = to_stripe(order.total, order.currency)
        if amount <= 0:
            raise PaymentRefused("an order of nothing is not paid by card", field="total")
        created = order.created_at.timestamp() if order.created_at else 0.0
        key = f"livemall-order-{order.id}-{int(created * 1_000_000)}-checkout"
        session: dict[str, Any] | None = None
        if order.payment_provider == self.name and order.payment_ref:
            session = await self._retrieve(order.payment_ref)
            if session is None or session.get("status") == "expired":  # gone (another account?) or expired
                key += f"-after-{order.payment_ref}"
                session = None
        if session is None:
            session = await self._call(self._client.v1.checkout.sessions.create_async(
                self._session_params(order, amount), options={"idempotency_key": key}))
        if not isinstance(session.get("id"), str) or not session["id"]:
            raise ProcessorError("Stripe answered a checkout session without an id")
        status = session.get("status")
        return {
            "payment_ref": session["id"],
            "redirect_url": session.get("url") if status == "open" else None,
            "session_status": status,
            "instructions": ("Pay by card on Stripe's page (redirect_url); you come back to the order after."
                             if status == "open" else
                             "Stripe has the payment; the order turns paid as soon as Stripe confirms it."),
        }

    def _session_params(self, order: Order, amount: int) -> dict[str, Any]:
        order_url = self._order_url.format(order_id=order.id)
        ref = str(order.id)
        return {
            "mode": "payment",
            # One line for the whole order total, so whatever the total includes (items now,
            # shipping later) is what Stripe charges and what the webhook is checked against.
            "line_items": [{"quantity": 1, "price_data": {
                "currency": order.currency.lower(), "unit_amount": amount,
                "product_data": {"name": f"livemall order #{order.id}"},
            }}],
            "client_reference_id": ref,
            "metadata": {"order_id": ref},
            "payment_intent_data": {"metadata": {"order_id": ref}},
            "success_url": f"{order_url}?payment=success&session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{order_url}?payment=cancelled",
        }

    async def _retrieve(self, session_id: str) -> dict[str, Any] | None:
        try:
            return await self._call(self._client.v1.checkout.sessions.retrieve_async(session_id), missing_ok=True)
        except _Missing:
            return None

    async def _call(self, request: Any, *, missing_ok: bool = False) -> dict[str, Any]:
        """Await one Stripe call: the object as a plain dict, or its failure as a domain error."""
        try:
            return (await request).to_dict()
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            log.warning("Stripe unavailable: %s", type(exc).__name__)
            raise ProcessorUnavailable("the card processor (Stripe) cannot be reached; the order stays pending, "
                                       "try again shortly") from None
        except (stripe.InvalidRequestError, stripe.CardError) as exc:
            if missing_ok and exc.http_status == 404:
                raise _Missing() from None
            param = str(getattr(exc, "param", None) or "")
            field = "currency" if "currency" in param else "total" if "amount" in param else "provider"
            raise PaymentRefused(f"Stripe: {exc.user_message or 'the payment was refused'}", field=field) from None
        except stripe.StripeError as exc:  # 5xx, malformed answers, a refused key, idempotency clash
            log.error("Stripe error: %s (status %s, request %s)", type(exc).__name__, exc.http_status,
                      exc.request_id)
            raise ProcessorError("the card processor (Stripe) failed; the order stays pending, try again "
                                 "shortly") from None

    async def expire(self, session_id: str) -> str | None:
        """Close an order's Checkout Session once the order is cancelled or expired, so
        its card page takes no payment for an order that no longer holds stock. Returns
        the session's status after (``expired``; ``complete`` when the buyer paid first:
        that payment's webhook then meets a closed order, see docs/orders.md), or None
        if Stripe has no such session. Raises the domain errors of ``_call``."""
        try:
            session = await self._call(self._client.v1.checkout.sessions.expire_async(session_id), missing_ok=True)
        except _Missing:
            return None
        except PaymentRefused:
            # Only an open session can be expired: read what it became instead.
            current = await self._retrieve(session_id)
            return current.get("status") if current else None
        return session.get("status")

    # --- webhook ----------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, now: float) -> WebhookEvent:
        """The verified event of a Stripe webhook call. The signature (`Stripe-Signature:
        t=…,v1=HMAC-SHA256(secret, "t.body")`, several v1 during a secret's rotation) and
        its age (`tolerance`) are the library's own check; `now` is unused because that
        check reads the clock itself."""
        try:
            event = self._client.construct_event(body, headers.get(SIGNATURE_HEADER), self._webhook_secret,
                                                 self.tolerance)
            data = event.to_dict()
        except stripe.SignatureVerificationError as exc:
            raise BadSignature(f"Stripe-Signature refused: {exc.user_message or 'no valid signature'}") from None
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):  # not UTF-8 / JSON / an event
            raise Invalid("the body is not a Stripe event") from None
        return _to_webhook_event(data)


class _Missing(Exception):
    """A retrieved object Stripe does not have (404)."""


def _to_webhook_event(event: dict[str, Any]) -> WebhookEvent:
    try:
        event_id, kind = event["id"], event["type"]
        session = event["data"]["object"]
    except (KeyError, TypeError):
        raise Invalid("the Stripe event has no id, type or data.object") from None
    if not isinstance(session, dict):
        raise Invalid("the Stripe event's data.object is not an object")
    if not (isinstance(event_id, str) and 0 < len(event_id) <= MAX_EVENT_ID) or not isinstance(kind, str):
        raise Invalid("the Stripe event id must be a string of 1 to 100 characters")
    if kind in PAID_EVENTS:
        # "completed" with payment_status "unpaid": a delayed method (a bank debit) that
        # settles later with async_payment_succeeded; nothing to do yet.
        outcome = SUCCEEDED if session.get("payment_status") == "paid" else IGNORED
    elif kind in FAILED_EVENTS:
        outcome = FAILED
    else:
        return WebhookEvent(event_id=event_id, kind=IGNORED, payment_ref="", amount=0, currency="")
    ref, amount, currency = session.get("id"), session.get("amount_total"), session.get("currency")
    if not (isinstance(ref, str) and 0 < len(ref) <= 100 and isinstance(currency, str) and len(currency) == 3
            and isinstance(amount, int) and not isinstance(amount, bool)):
        raise Invalid("a checkout.session event carries the session id, amount_total and currency")
    currency = currency.upper()
    return WebhookEvent(event_id=event_id, kind=outcome, payment_ref=ref, amount=from_stripe(amount, currency),
                        currency=currency)

