"""Routes: orders, payments and quotes (reports: web/api_reports.py); the order desk and the expiry sweeper.

Handlers are thin: parse, authorise, call one domain function, then — after the
transaction committed — tell the show room and the buyer (`stock`, `sale`, `order`).
An event that cannot be delivered is logged, never turned into a failed request: the
order exists, and a retry with the same Idempotency-Key would only return it again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, StringConstraints
from sqlalchemy import select

from orders import lifecycle, payments, quotes, stripe_payments
from orders.errors import InsufficientStock, Invalid, NotFound, SoldOut
from orders.events import send_committed
from orders.expiry import Expired, Sweeper
from orders.models import Order, OrderStatus, Role, User, utcnow
from orders.ordering import (
    MissingIdempotencyKey,
    OrderDesk,
    OrderRequest,
    get_order_for,
    list_orders,
    orders_public,
)
from orders.checkout import OrderChanged
from orders.shipping import check_tracking
from rooms.server import ROOMS, viewers_key
from web.appkeys import DB, EVENTS, SETTINGS
from web.auth import require_user
from web.errors import STATUS, json_response
from web.metrics import count_order
from web.validation import Body, Id, id_or_none, int_param, parse_body

routes = web.RouteTableDef()
log = logging.getLogger(__name__)

DESK = web.AppKey("order_desk", OrderDesk)
PROVIDERS = web.AppKey("payment_providers", dict)


class CardPages:
    """Closes the card processor's page (a Stripe Checkout Session) of orders that were
    cancelled or expired, once that has committed, so a buyer cannot pay an order that
    no longer holds its stock. In the background: a slow processor must not hold the
    buyer's cancel or the expiry sweep. A failure is logged, not retried: Stripe
    expires an unpaid session by itself after 24 h, and a payment that meets a closed
    order is refused by the webhook (409) for the admin to refund (docs/orders.md)."""

    def __init__(self, providers: dict[str, Any]) -> None:
        self._providers = providers
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self, provider: str | None, payment_ref: str | None) -> None:
        expire = getattr(self._providers.get(provider or ""), "expire", None)
        if expire is None or not payment_ref:
            return  # no page to close: invoice, sandbox, or never sent to pay
        task = asyncio.create_task(self._close(expire, payment_ref))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, expire: Any, payment_ref: str) -> None:
        try:
            status = await expire(payment_ref)
        except Exception:  # noqa: BLE001 - see the class docstring
            log.warning("could not close the card page %s", payment_ref, exc_info=True)
            return
        if status == "complete":
            log.warning("card page %s was paid before its order closed: refund it", payment_ref)

    async def aclose(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)


CARD_PAGES = web.AppKey("card_pages", CardPages)
STATUS[stripe_payments.ProcessorError] = 502  # the card processor failed: a bad gateway, not our 500


class RoomsAudience:
    """`orders.attribution.Audience` over the rooms' presence: a buyer who joined a show
    a moment ago is watching it before the audience ledger has written its row (about a
    second). Asked only about buyers the ledger does not know: this node's sockets
    first, then the shared presence set (Redis), whose members are fetched at most
    every `SHARED_FOR` seconds a show, so orders naming a show nobody watched cannot
    make a node read a large audience over and over."""

    SHARED_FOR = 0.25

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._shared: dict[int, tuple[float, frozenset[str]]] = {}

    async def watching(self, show_id: int, user_ids: set[int]) -> set[int]:
        rooms = self._app.get(ROOMS)
        if rooms is None:
            return set()
        key = viewers_key(show_id)
        here = set(rooms.presence.local_members(key))
        found = {u for u in user_ids if f"u{u}" in here}
        if found == user_ids:
            return found
        clock = time.monotonic()
        fetched = self._shared.get(show_id)
        if fetched is None or clock - fetched[0] > self.SHARED_FOR:
            if len(self._shared) > 1000:
                self._shared.clear()
            try:
                fetched = (clock, frozenset(await rooms.presence.present(key)))
            except Exception as exc:  # noqa: BLE001 - Redis away: the ledger still answers in a second
                log.warning("shared presence not read: %s", type(exc).__name__)
                return found
            self._shared[show_id] = fetched
        return found | {u for u in user_ids if f"u{u}" in fetched[1]}


AUDIENCE = web.AppKey("order_audience", RoomsAudience)

Quantity = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]  # range checks are the domain's (422 with a reason)
KEY = re.compile(r"^[\x21-\x7e]{1,100}$")  # printable ASCII, no spaces


class OrderIn(Body):
    product_id: Id
    quantity: Quantity
    show_id: Id | None = None
    coview: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None


class PayIn(Body):
    provider: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class ShipIn(Body):
    carrier: Annotated[str, StringConstraints(max_length=40)] | None = None
    tracking_number: Annotated[str, StringConstraints(max_length=40)] | None = None


class ChargeIn(Body):
    payment_ref: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    card_number: Annotated[str, StringConstraints(min_length=12, max_length=23)]


class QuoteIn(Body):
    product_id: Id
    quantity: Quantity
    destination_country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
    incoterm: Literal["EXW", "FOB", "CIF", "DAP", "DDP"]
    note: Annotated[str, StringConstraints(max_length=2000)] = ""
    show_id: Id | None = None
    coview: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None


class AnswerIn(Body):
    unit_price: Annotated[int, Field(ge=0, le=2**31 - 1)]
    valid_days: Annotated[int, Field(ge=1, le=quotes.MAX_VALID_DAYS)] = 14


def _order_events(order: dict[str, Any], buyer_id: int, stock: int | None) -> list[tuple[str, int, str, dict]]:
    calls: list[tuple[str, int, str, dict]] = []
    if order["show_id"] is not None and stock is not None:
        calls.append(("show", order["show_id"], "stock", {"product_id": order["product_id"], "stock": stock}))
    calls.append(("user", buyer_id, "order", order))
    if order.get("broker_id") is not None:
        # The co-view owner's list of credited orders follows each status change (issue
        # 15, item 8); only the id and status: the buyer's address is not theirs to see.
        calls.append(("user", order["broker_id"], "credited_order", {"id": order["id"], "status": order["status"]}))
    return calls


async def _public(session, order: Order) -> dict[str, Any]:
    return (await orders_public(session, [order]))[0]


# --- Orders -----------------------------------------------------------------------------

@routes.post("/api/orders")
async def place_order(request: web.Request) -> web.Response:
    user = await require_user(request)
    key = request.headers.get("Idempotency-Key", "")
    if not KEY.match(key):
        raise MissingIdempotencyKey("send an Idempotency-Key header: 1 to 100 printable ASCII characters",
                                    field="Idempotency-Key")
    body = await parse_body(request, OrderIn)
    started = time.perf_counter()
    outcome = "refused"
    try:
        placed = await request.app[DESK].place(OrderRequest(
            buyer_id=user.id, idempotency_key=key, product_id=body.product_id, quantity=body.quantity,
            show_id=body.show_id, coview=body.coview,
        ))
        outcome = "accepted" if placed.created else "replayed"
    except SoldOut as exc:
        outcome = "sold_out"
        left = exc.detail.get("stock")
        if isinstance(left, int) and left > 0:  # some are left: say how many (issue 15, item 4)
            raise InsufficientStock(f"Only {left} left", field="quantity", product_id=body.product_id,
                                    available=left) from None
        raise
    finally:
        count_order(outcome, time.perf_counter() - started)
    response = json_response(placed.order, status=201)
    if not placed.created:
        response.headers["Idempotency-Replayed"] = "true"
        return response
    order = placed.order
    calls = _order_events(order, user.id, placed.stock)
    if order["show_id"] is not None:  # after `stock`, before the buyer's `order`
        calls.insert(1, ("show", order["show_id"], "sale", {"product_id": order["product_id"],
                                                            "quantity": order["quantity"]}))
    await send_committed(request.app[EVENTS], *calls)
    return response


@routes.get("/api/orders")
async def my_orders(request: web.Request) -> web.Response:
    user = await require_user(request)
    async with request.app[DB].session() as session:
        body = await orders_public(session, await list_orders(session, user.id))
    return json_response(body)


@routes.get("/api/orders/{order_id}")
async def order_detail(request: web.Request) -> web.Response:
    user = await require_user(request)
    order_id = int_param(request, "order_id")
    async with request.app[DB].session() as session:
        body = await _public(session, await get_order_for(session, order_id, user))
    return json_response(body)


async def _move(request: web.Request, to: OrderStatus, *, buyer_only: bool = False,
                **changes: object) -> web.Response:
    user = await require_user(request) if buyer_only else await require_user(request, Role.admin)
    order_id = int_param(request, "order_id")
    async with request.app[DB].transaction() as session:
        if buyer_only:
            order = await session.get(Order, order_id)
            if order is None or order.buyer_id != user.id:
                raise NotFound(f"no order {order_id}")
        moved = await lifecycle.move(session, order_id, to, utcnow(), **changes)
        body = await _public(session, moved.order)
    if to is OrderStatus.cancelled:
        request.app[CARD_PAGES].close(moved.order.payment_provider, moved.order.payment_ref)
    await send_committed(request.app[EVENTS], *_order_events(body, moved.order.buyer_id, moved.stock))
    return json_response(body)


@routes.post("/api/orders/{order_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    return await _move(request, OrderStatus.cancelled, buyer_only=True)


@routes.post("/api/orders/{order_id}/ship")
async def ship(request: web.Request) -> web.Response:
    """Optional body {carrier, tracking_number} (both or neither): shown to the buyer
    with a tracking link (orders/shipping.py)."""
    await require_user(request, Role.admin)
    tracking = None
    if request.body_exists:
        body = await parse_body(request, ShipIn)
        tracking = check_tracking(body.carrier, body.tracking_number)
    changes = {"carrier": tracking[0], "tracking_number": tracking[1]} if tracking else {}
    return await _move(request, OrderStatus.shipped, **changes)


@routes.post("/api/orders/{order_id}/deliver")
async def deliver(request: web.Request) -> web.Response:
    return await _move(request, OrderStatus.delivered)


@routes.post("/api/orders/{order_id}/refund")
async def refund(request: web.Request) -> web.Response:
    return await _move(request, OrderStatus.refunded)


@routes.post("/api/orders/{order_id}/confirm-payment")
async def confirm_payment(request: web.Request) -> web.Response:
    await require_user(request, Role.admin)
    order_id = int_param(request, "order_id")
    async with request.app[DB].transaction() as session:
        moved = await payments.confirm_invoice(session, order_id, utcnow())
        body = await _public(session, moved.order)
    await send_committed(request.app[EVENTS], *_order_events(body, moved.order.buyer_id, None))
    return json_response(body)


@routes.post("/api/orders/{order_id}/pay")
async def pay(request: web.Request) -> web.Response:
    user = await require_user(request)
    order_id = int_param(request, "order_id")
    body = await parse_body(request, PayIn)
    provider = request.app[PROVIDERS].get(body.provider)
    if provider is None:
        raise Invalid(f"payment providers: {', '.join(sorted(request.app[PROVIDERS]))}", field="provider")
    async with request.app[DB].session() as session:
        order = await get_order_for(session, order_id, user)
        if order.buyer_id != user.id:
            raise NotFound(f"no order {order_id}")
    # A remote processor (Stripe) is asked outside the transaction: it may take seconds,
    # and a failure there (502/503) leaves the order as it was.
    prepared = await payments.prepare_checkout(provider, order)
    asked = (order.total, order.currency)
    async with request.app[DB].transaction() as session:
        order = await get_order_for(session, order_id, user)
        if (order.total, order.currency) != asked:  # a checkout to another address meanwhile
            raise OrderChanged("the order's total changed while payment was prepared; pay again",
                               total=order.total)
        checkout = await payments.start_payment(session, order, provider, utcnow(), prepared)
    return json_response({"order_id": order_id, **checkout})


# --- Payment webhooks -------------------------------------------------------------------

async def _apply_webhook(request: web.Request, provider_name: str, event: payments.WebhookEvent) -> dict[str, Any]:
    db = request.app[DB]
    async with db.transaction() as session:
        outcome = await payments.apply_event(session, provider_name, event, utcnow(), db.is_sqlite)
        order = await _public(session, outcome.moved.order) if outcome.moved else None
    if outcome.moved is not None and order is not None:
        await send_committed(request.app[EVENTS], *_order_events(order, outcome.moved.order.buyer_id, None))
    return {"ok": True, "duplicate": outcome.duplicate, "event": event.event_id,
            "order": order}


@routes.post("/api/payments/{provider}/webhook")
async def webhook(request: web.Request) -> web.Response:
    name = request.match_info["provider"]
    provider = request.app[PROVIDERS].get(name)
    if provider is None:
        raise payments.UnknownProvider(f"no payment provider {name[:32]!r} is configured")
    raw = await request.read()  # the signature covers the exact bytes
    event = provider.parse_webhook(request.headers, raw, time.time())
    if event.kind == payments.IGNORED:  # verified, nothing to do here: 2xx so it is not resent
        return json_response({"ok": True, "ignored": True, "event": event.event_id})
    return json_response(await _apply_webhook(request, name, event))


@routes.post("/api/payments/sandbox/charge")
async def sandbox_charge(request: web.Request) -> web.Response:
    """The sandbox's test card form: plays the processor, then takes the signed webhook path."""
    user = await require_user(request)
    body = await parse_body(request, ChargeIn)
    provider = request.app[PROVIDERS].get("sandbox")
    if not isinstance(provider, payments.SandboxProvider):
        raise payments.UnknownProvider("the sandbox provider is not in service (a test mode: LIVEMALL_PAYMENT_SANDBOX "
                                       "and LIVEMALL_PAYMENT_WEBHOOK_SECRET)")
    async with request.app[DB].session() as session:
        order = await session.scalar(select(Order).where(
            Order.payment_provider == "sandbox", Order.payment_ref == body.payment_ref, Order.buyer_id == user.id))
    if order is None:
        raise NotFound("no sandbox payment with this reference")
    headers, raw = provider.charge(body.payment_ref, body.card_number, order.total, order.currency)
    event = provider.parse_webhook(headers, raw, time.time())
    result = await _apply_webhook(request, "sandbox", event)
    if event.kind == payments.FAILED:
        raise payments.CardDeclined("the card was declined (sandbox test card)")
    return json_response(result)


# --- Quotes -----------------------------------------------------------------------------

@routes.post("/api/quotes")
async def request_quote(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, QuoteIn)
    async with request.app[DB].transaction() as session:
        quote = await quotes.request_quote(session, quotes.QuoteRequest(
            buyer_id=user.id, product_id=body.product_id, quantity=body.quantity,
            destination_country=body.destination_country, incoterm=body.incoterm, note=body.note,
            show_id=body.show_id, coview=body.coview,
        ), utcnow(), request.app[AUDIENCE])
        result = quotes.quote_public(quote)
    return json_response(result, status=201)


@routes.get("/api/quotes")
async def list_quotes(request: web.Request) -> web.Response:
    """?show_id=N narrows the list to one show (the studio's quotes panel); who sees
    which quotes is unchanged (orders/quotes.py, list_quotes)."""
    user = await require_user(request)
    show_id = None
    if "show_id" in request.query:
        show_id = id_or_none(request.query["show_id"])
        if show_id is None:
            raise Invalid("show_id is a show's id", field="show_id")
    async with request.app[DB].session() as session:
        rows = await quotes.list_quotes(session, user, show_id=show_id)
    return json_response([quotes.quote_public(q) for q in rows])


@routes.get("/api/quotes/{quote_id}")
async def quote_detail(request: web.Request) -> web.Response:
    user = await require_user(request)
    quote_id = int_param(request, "quote_id")
    async with request.app[DB].session() as session:
        quote = await quotes.get_quote_for(session, quote_id, user)
    return json_response(quotes.quote_public(quote))


@routes.post("/api/quotes/{quote_id}/answer")
async def answer_quote(request: web.Request) -> web.Response:
    user = await require_user(request, Role.host, Role.admin)
    quote_id = int_param(request, "quote_id")
    body = await parse_body(request, AnswerIn)
    async with request.app[DB].transaction() as session:
        quote = await quotes.answer_quote(session, quote_id, user, unit_price=body.unit_price,
                                          valid_days=body.valid_days, at=utcnow(),
                                          min_price_share=request.app[SETTINGS].quote_min_price_share)
        result = quotes.quote_public(quote)
    await send_committed(request.app[EVENTS], ("user", quote.buyer_id, "quote", result))
    return json_response(result)


@routes.post("/api/quotes/{quote_id}/accept")
async def accept_quote(request: web.Request) -> web.Response:
    user = await require_user(request)
    quote_id = int_param(request, "quote_id")
    expiry = timedelta(seconds=request.app[SETTINGS].quote_order_expiry)
    async with request.app[DB].transaction() as session:
        quote, order, stock = await quotes.accept_quote(session, quote_id, user, utcnow(), expiry)
        result = {**quotes.quote_public(quote), "order": await _public(session, order)}
    await send_committed(request.app[EVENTS], *_order_events(result["order"], user.id, stock))
    return json_response(result)


@routes.post("/api/quotes/{quote_id}/decline")
async def decline_quote(request: web.Request) -> web.Response:
    user = await require_user(request)
    quote_id = int_param(request, "quote_id")
    async with request.app[DB].transaction() as session:
        quote = await quotes.decline_quote(session, quote_id, user, utcnow())
        result = quotes.quote_public(quote)
    return json_response(result)


# --- Set-up -----------------------------------------------------------------------------

def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    payments.check_sandbox(settings.payment_sandbox, settings.public_url)  # refuses to start: issue 14, item 10
    stripe_payments.check_config(settings.stripe_secret_key, settings.stripe_webhook_secret,
                                 settings.public_url)  # half a Stripe set-up refuses to start
    app.router.add_routes(routes)
    app[AUDIENCE] = RoomsAudience(app)
    app.cleanup_ctx.append(_orders)


async def _orders(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    desk = OrderDesk(app[DB], max_quantity=settings.order_max_quantity, expiry_seconds=settings.order_expiry,
                     audience=app[AUDIENCE])
    app[DESK] = desk
    app[PROVIDERS] = payments.providers(settings.payment_webhook_secret, settings.payment_webhook_tolerance,
                                        sandbox=settings.payment_sandbox)
    card = None
    if stripe_payments.check_config(settings.stripe_secret_key, settings.stripe_webhook_secret, settings.public_url):
        card = stripe_payments.StripeProvider(
            settings.stripe_secret_key, settings.stripe_webhook_secret, settings.public_url,
            tolerance=settings.payment_webhook_tolerance, api_base=settings.stripe_api_base,
            timeout=settings.stripe_timeout, max_network_retries=settings.stripe_max_network_retries)
        app[PROVIDERS][card.name] = card

    card_pages = app[CARD_PAGES] = CardPages(app[PROVIDERS])

    async def announce(expired: list[Expired]) -> None:
        calls = []
        for item in expired:
            calls += _order_events(item.order, item.buyer_id, item.stock)
            card_pages.close(*item.payment)
        await send_committed(app[EVENTS], *calls)

    sweeper = Sweeper(app[DB], settings.order_sweep_interval, announce)
    sweeper.start()
    yield
    await sweeper.stop()
    await desk.close()
    await card_pages.aclose()
    if card is not None:
        await card.aclose()
