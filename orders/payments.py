"""Payments: a provider interface and two built-in providers.

- `invoice`: bank transfer. The buyer gets a transfer reference; an admin confirms the
  money arrived (`confirm_invoice`).
- `sandbox`: a test card processor. Checkout gives a payment reference; the
  "processor" (in tests, or `SandboxProvider.charge` behind the sandbox charge route)
  reports the result by a signed webhook. It "pays" with test card numbers and no
  money, so it is in service only in an explicit test mode (`sandbox=True`, the
  `payment_sandbox` setting), never because a webhook secret happens to be set
  (issue 14, item 10).
- `stripe`: a real card processor, in `orders/stripe_payments.py` (offered only when
  its keys are configured); its events go through the same `apply_event` below.

Webhook security (sandbox): header `X-Livemall-Signature: t=<unix seconds>,v1=<hex>`
where hex = HMAC-SHA256(secret, f"{t}." + raw body). The timestamp is signed too, so it
cannot be moved forward; events older or newer than `tolerance` seconds are refused
(401). Several `v1=` entries are allowed (secret rotation). Each event id is stored in
`payment_events` (unique per provider): a replay of a processed event is acknowledged
with `duplicate: true` and changes nothing — 200 rather than an error, so a provider
that retries after a lost response stops retrying. An event whose effect is refused
(unknown payment, wrong amount, order no longer pending) is not recorded, so the answer
to a replay of it stays the same refusal.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import secrets
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orders.checkout import require_ship_to
from orders.errors import Conflict, Invalid, NotFound, Unauthorized
from orders.lifecycle import IllegalTransition, Moved, move
from orders.models import Order, OrderStatus, PaymentEvent

SIGNATURE_HEADER = "X-Livemall-Signature"
SUCCEEDED = "payment.succeeded"
FAILED = "payment.failed"
# A verified event that pays or fails nothing here (a processor's other event types):
# acknowledged with 2xx so the processor stops resending it, and not recorded.
IGNORED = "payment.ignored"
MAX_EVENT_ID = 100


class BadSignature(Unauthorized):
    code = "bad_signature"


class UnknownProvider(NotFound):
    code = "unknown_provider"


class AmountMismatch(Invalid):
    code = "amount_mismatch"


class CardDeclined(Conflict):
    code = "card_declined"


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str
    kind: str  # SUCCEEDED or FAILED
    payment_ref: str
    amount: int
    currency: str


class PaymentProvider(Protocol):
    name: str

    def checkout(self, order: Order) -> dict[str, Any] | Awaitable[dict[str, Any]]:
        """What the buyer needs to pay: a reference and instructions (awaitable when a
        remote processor is asked over the network, as Stripe is)."""

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, now: float) -> WebhookEvent:
        """The verified event of a webhook call; BadSignature/Invalid if it is not one."""


class InvoiceProvider:
    name = "invoice"

    def __init__(self, bank_account: str = "Livemall Association, KEB Hana Bank 000-000000-000") -> None:
        self.bank_account = bank_account

    def checkout(self, order: Order) -> dict[str, Any]:
        return {
            "payment_ref": f"INV-{order.id:08d}",
            "instructions": f"Transfer {order.total} ({order.currency} minor units) to {self.bank_account} "
                            f"quoting INV-{order.id:08d}; an administrator confirms the payment.",
        }

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, now: float) -> WebhookEvent:
        raise UnknownProvider("invoice payments are confirmed by an administrator, not by webhook")


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class SandboxProvider:
    name = "sandbox"
    SUCCEEDS = "4242424242424242"
    DECLINED = "4000000000000002"

    def __init__(self, secret: str, tolerance: int = 300) -> None:
        if not secret:
            raise ValueError("the sandbox provider needs a webhook secret")
        self._secret = secret
        self.tolerance = tolerance

    def checkout(self, order: Order) -> dict[str, Any]:
        return {
            "payment_ref": f"sbx_{secrets.token_hex(12)}",
            "instructions": "Sandbox: pay with card 4242 4242 4242 4242 (succeeds) or "
                            "4000 0000 0000 0002 (declined) via POST /api/payments/sandbox/charge.",
        }

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, now: float) -> WebhookEvent:
        header = headers.get(SIGNATURE_HEADER, "")
        timestamp: int | None = None
        candidates: list[str] = []
        for part in header.split(","):
            name, _, value = part.strip().partition("=")
            if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
                timestamp = int(value)
            elif name == "v1":
                candidates.append(value)
        if timestamp is None or not candidates:
            raise BadSignature(f"missing or malformed {SIGNATURE_HEADER} header")
        if abs(now - timestamp) > self.tolerance:
            raise BadSignature("signature timestamp outside the tolerance window")
        expected = sign(self._secret, body, timestamp).rpartition("v1=")[2]
        if not any(hmac.compare_digest(expected, c) for c in candidates):
            raise BadSignature("signature does not match")
        return parse_event(body)

    def charge(self, payment_ref: str, card_number: str, amount: int, currency: str,
               now: float | None = None) -> tuple[dict[str, str], bytes]:
        """Play the card processor: the signed webhook call it would make for this card."""
        digits = "".join(c for c in card_number if c.isdigit())
        if digits not in (self.SUCCEEDS, self.DECLINED):
            raise Invalid("sandbox test cards: 4242 4242 4242 4242 or 4000 0000 0000 0002", field="card_number")
        event = {
            "id": f"evt_{secrets.token_hex(12)}",
            "type": SUCCEEDED if digits == self.SUCCEEDS else FAILED,
            "data": {"payment_ref": payment_ref, "amount": amount, "currency": currency},
        }
        body = json.dumps(event).encode()
        stamp = int(time.time() if now is None else now)
        return {SIGNATURE_HEADER: sign(self._secret, body, stamp)}, body


def parse_event(body: bytes) -> WebhookEvent:
    try:
        event = json.loads(body.decode("utf-8"))
        data = event["data"]
        parsed = WebhookEvent(
            event_id=event["id"], kind=event["type"], payment_ref=data["payment_ref"],
            amount=data["amount"], currency=data["currency"],
        )
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError):  # RecursionError: "[[[[…"
        raise Invalid("the event is not {id, type, data: {payment_ref, amount, currency}}") from None
    if not (isinstance(parsed.event_id, str) and 0 < len(parsed.event_id) <= MAX_EVENT_ID):
        raise Invalid("event id must be a string of 1 to 100 characters")
    if parsed.kind not in (SUCCEEDED, FAILED):
        raise Invalid(f"unknown event type {parsed.kind!r}")
    if not isinstance(parsed.payment_ref, str) or not isinstance(parsed.amount, int) or not isinstance(
        parsed.currency, str
    ):
        raise Invalid("payment_ref and currency are strings, amount an integer")
    return parsed


class SandboxInProduction(ValueError):
    """The sandbox was switched on for a node that serves the public over https."""


def check_sandbox(sandbox: bool, public_url: str) -> None:
    """Refuse the test card processor on a public (https) site: a buyer could "pay"
    with card 4242… and take real goods."""
    if sandbox and public_url.strip().lower().startswith("https://"):
        raise SandboxInProduction(
            f"the sandbox payment processor (LIVEMALL_PAYMENT_SANDBOX) is for tests only and must not run "
            f"with an https:// public_url ({public_url}); switch one of them off")


def providers(webhook_secret: str, tolerance: int = 300, *, sandbox: bool = False) -> dict[str, PaymentProvider]:
    """The providers in service: the sandbox only in test mode and with a webhook secret."""
    found: dict[str, PaymentProvider] = {"invoice": InvoiceProvider()}
    if sandbox and webhook_secret:
        found["sandbox"] = SandboxProvider(webhook_secret, tolerance)
    return found


def offered(in_service: Mapping[str, PaymentProvider], currency: str) -> list[str]:
    """The providers offered for an order in `currency`: those in service that take it
    (a provider may say with `accepts(currency)`; Stripe does, see orders/stripe_payments.py)."""
    return sorted(name for name, provider in in_service.items()
                  if getattr(provider, "accepts", lambda _currency: True)(currency))


async def prepare_checkout(provider: PaymentProvider, order: Order) -> dict[str, Any]:
    """Ask the provider how a pending order is paid. For a remote processor this is a
    network call: make it outside a database transaction (a slow processor must not hold
    a connection) and hand the result to `start_payment`."""
    if order.status is not OrderStatus.pending:
        raise IllegalTransition(f"an order that is {order.status.value} cannot be paid",
                                current_status=order.status.value)
    require_ship_to(order)  # no paid order without a ship-to address (orders/checkout.py)
    checkout = provider.checkout(order)
    return await checkout if inspect.isawaitable(checkout) else checkout


async def start_payment(session: AsyncSession, order: Order, provider: PaymentProvider,
                        at: datetime, prepared: dict[str, Any] | None = None) -> dict[str, Any]:
    """Choose how a pending order is paid; may be called again to switch provider.
    `prepared`: the provider's answer from `prepare_checkout`, asked before the transaction."""
    if order.status is not OrderStatus.pending:
        raise IllegalTransition(f"an order that is {order.status.value} cannot be paid",
                                current_status=order.status.value)
    checkout = prepared if prepared is not None else await prepare_checkout(provider, order)
    order.payment_provider = provider.name
    order.payment_ref = checkout["payment_ref"]
    order.updated_at = at
    await session.flush()
    return {"provider": provider.name, **checkout, "amount": order.total, "currency": order.currency}


async def confirm_invoice(session: AsyncSession, order_id: int, at: datetime) -> Moved:
    """An admin saw the bank transfer arrive."""
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    if order.payment_provider not in (None, "invoice"):
        raise Conflict(f"this order is paid through {order.payment_provider}", current_status=order.status.value)
    changes: dict[str, object] = {"payment_provider": "invoice"}
    if order.payment_ref is None:
        changes["payment_ref"] = f"INV-{order.id:08d}"
    return await move(session, order_id, OrderStatus.paid, at, **changes)


@dataclass(frozen=True)
class WebhookOutcome:
    duplicate: bool
    moved: Moved | None  # set when the event paid an order


async def apply_event(session: AsyncSession, provider: str, event: WebhookEvent, at: datetime,
                      is_sqlite: bool) -> WebhookOutcome:
    """Record a verified event once and apply it. Call inside a transaction."""
    insert = sqlite.insert if is_sqlite else postgresql.insert
    order = await session.scalar(
        select(Order).where(Order.payment_provider == provider, Order.payment_ref == event.payment_ref)
    )
    recorded = await session.scalar(
        insert(PaymentEvent)
        .values(provider=provider, event_id=event.event_id, order_id=order.id if order else None, received_at=at)
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(PaymentEvent.id)
    )
    if recorded is None:
        return WebhookOutcome(duplicate=True, moved=None)
    if order is None:
        raise Invalid(f"no order with payment reference {event.payment_ref!r}", field="payment_ref")
    if event.kind == FAILED:
        return WebhookOutcome(duplicate=False, moved=None)  # stays pending; expiry frees its stock
    if event.amount != order.total or event.currency != order.currency:
        raise AmountMismatch(f"paid {event.amount} {event.currency}, order is {order.total} {order.currency}")
    return WebhookOutcome(duplicate=False, moved=await move(session, order.id, OrderStatus.paid, at))
