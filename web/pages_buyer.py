"""The buyer's own pages: My orders (`/orders`), one order (`/orders/{id}`) and My
quotes (`/quotes`).

Server-rendered like the other pages (web/pages.py: `render`, the catalogs, `<time>`
in UTC rewritten in the viewer's zone by the page's script). The actions are the
existing JSON routes, called by small scripts: cancel (`POST /api/orders/{id}/cancel`),
pay (the checkout page, `/orders/{id}/checkout`), accept and decline a quote
(`POST /api/quotes/{id}/accept|decline`). An order or quote of someone else is a 404
(no hint it exists), as in the API; an admin may open any order, read-only.

Stripe sends the buyer back to `/orders/{id}?payment=success|cancelled`
(orders/stripe_payments.py): the order page says what that means while the webhook,
the only thing that pays an order, has not arrived yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from sqlalchemy import select

from orders.checkout import ship_to_public
from orders.models import Order, OrderStatus, Product, Quote, QuoteStatus, Show
from orders.errors import NotFound
from orders.ordering import get_order_for, list_orders
from orders.shipping import tracking_public
from web.appkeys import DB
from web.pages import not_found, page_user, render, to_login
from web.validation import id_or_none

S = OrderStatus
# How far along the delivery path each status is (refunded, cancelled and expired end it).
PROGRESS = {S.pending: 0, S.paid: 1, S.shipped: 2, S.delivered: 3}
PAYMENT_RETURNS = ("success", "cancelled")  # ?payment= of the card processor's return


@dataclass(frozen=True)
class Step:
    """One line of an order's timeline. `key` names it for the template's wording
    (placed, paid, shipped, delivered, refunded, cancelled, expired); `at` is None when
    the step is still to come or its time is unknown (orders from before migration 0006)."""

    key: str
    done: bool
    at: datetime | None = None


def timeline(order: Order) -> list[Step]:
    """The steps an order took, and while it is on its way, those still to come."""
    steps = [Step("placed", True, order.created_at)]
    status = order.status
    if status in (S.cancelled, S.expired):
        # Only a pending order is cancelled or expires: it was never paid. The sweeper
        # (orders/expiry.py) sets no `cancelled_at`; its status is final, so its last
        # update is when it expired.
        steps.append(Step(status.value, True, order.cancelled_at or order.updated_at))
        return steps
    if status is S.refunded:
        # Refunded from paid, shipped or delivered: the steps it has times for happened.
        steps.append(Step("paid", True, order.paid_at))
        if order.shipped_at is not None:
            steps.append(Step("shipped", True, order.shipped_at))
        if order.delivered_at is not None:
            steps.append(Step("delivered", True, order.delivered_at))
        steps.append(Step("refunded", True, order.refunded_at or order.updated_at))
        return steps
    reached = PROGRESS[status]
    for rank, key, at in ((1, "paid", order.paid_at), (2, "shipped", order.shipped_at),
                          (3, "delivered", order.delivered_at)):
        steps.append(Step(key, reached >= rank, at if reached >= rank else None))
    return steps


def order_view(order: Order, product_name: str | None, now: datetime) -> dict[str, Any]:
    """What the order pages show of an order (the template formats money and times)."""
    held = order.status is S.pending and (order.expires_at is None or order.expires_at > now)
    return {
        "order": order,
        "product_name": product_name,
        "items_total": order.unit_price * order.quantity,
        "ship_to": ship_to_public(order),
        "tracking": tracking_public(order.carrier, order.tracking_number),
        "steps": timeline(order),
        # Pay and cancel while the hold lasts (the sweeper expires it within seconds after).
        "payable": held,
        "cancellable": held,
    }


async def _product_names(session, product_ids: set[int]) -> dict[int, str]:
    if not product_ids:
        return {}
    rows = await session.execute(select(Product.id, Product.name).where(Product.id.in_(product_ids)))
    return {pid: name for pid, name in rows.all()}


async def my_orders(request: web.Request) -> web.Response:
    user = await page_user(request)
    if user is None:
        raise to_login(request)
    now = datetime.now(timezone.utc)
    async with request.app[DB].session() as session:
        rows = await list_orders(session, user.id)
        names = await _product_names(session, {o.product_id for o in rows})
    views = [order_view(o, names.get(o.product_id), now) for o in rows]
    return render(request, "my_orders.html", user=user, orders=views)


async def order_page(request: web.Request) -> web.Response:
    user = await page_user(request)
    if user is None:
        raise to_login(request)
    order_id = id_or_none(request.match_info["order_id"])
    if order_id is None:
        return not_found(request, user, "order")
    async with request.app[DB].session() as session:
        try:
            order = await get_order_for(session, order_id, user)  # the buyer's, or any for an admin
        except NotFound:
            return not_found(request, user, "order")
        names = await _product_names(session, {order.product_id})
    view = order_view(order, names.get(order.product_id), datetime.now(timezone.utc))
    own = order.buyer_id == user.id
    if not own:  # an admin looking: nothing to press
        view.update(payable=False, cancellable=False)
    payment = request.query.get("payment")
    data = {
        "order_id": order.id,
        "status": order.status.value,
        # Back from the card processor with the webhook still to come: the page asks
        # for the order again until it is paid (GET /api/orders/{id}).
        "awaiting_webhook": own and payment == "success" and order.status is S.pending,
    }
    return render(request, "order.html", user=user, data=data,
                  payment=payment if payment in PAYMENT_RETURNS else None, **view)


@dataclass(frozen=True)
class QuoteLine:
    quote: Quote
    product_name: str
    show_title: str | None
    order_status: str | None  # the status of the order an accepted quote became
    open: bool  # answered and still valid: Accept
    expired: bool  # answered, but its validity has passed
    declinable: bool  # requested or answered: Decline


async def my_quotes(request: web.Request) -> web.Response:
    user = await page_user(request)
    if user is None:
        raise to_login(request)
    now = datetime.now(timezone.utc)
    async with request.app[DB].session() as session:
        # The user's own requests, whatever their role (GET /api/quotes shows a host the
        # quotes of their shows instead; this page is about what the user asked for).
        rows = (await session.execute(
            select(Quote, Product.name, Show.title, Order.status)
            .join(Product, Product.id == Quote.product_id)
            .outerjoin(Show, Show.id == Quote.show_id)
            .outerjoin(Order, Order.id == Quote.order_id)
            .where(Quote.buyer_id == user.id)
            .order_by(Quote.id.desc()).limit(200)
        )).all()
    lines = []
    for quote, product_name, show_title, order_status in rows:
        answered = quote.status is QuoteStatus.answered
        valid = quote.valid_until is not None and quote.valid_until > now
        lines.append(QuoteLine(quote, product_name, show_title, order_status.value if order_status else None,
                               open=answered and valid, expired=answered and not valid,
                               declinable=quote.status in (QuoteStatus.requested, QuoteStatus.answered)))
    return render(request, "my_quotes.html", user=user, quotes=lines)


def setup(app: web.Application) -> None:
    app.router.add_get("/orders", my_orders)
    app.router.add_get("/orders/{order_id}", order_page)
    app.router.add_get("/quotes", my_quotes)


__all__ = ["setup", "timeline", "Step"]
