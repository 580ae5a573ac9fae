"""Checkout: a pending order gets its ship-to address, shipping and duties, then is paid.

`check_out` copies an address of the buyer's book onto the order (a later edit of the
book does not move the parcel) and prices the parcel (orders/shipping.py). From then on
the order's `total` is what the buyer pays — goods + shipping + duties (DDP only) — so
every payment provider charges, and every webhook is checked against, one figure.
`items_total` (unit price × quantity) stays what the goods cost.

A checkout may be repeated with another address until payment starts; after that the
amount a provider was given must not change, so it is refused (`payment_started`).
Payment of an order without a ship-to address is refused (`address_required`,
`require_ship_to`, called where payment starts).

A quote's order ships as the quote agreed: to the quote's destination country, at the
quoted price (shipping 0 here), under the quote's incoterm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from orders import coupons
from orders.addresses import AddressNotFound, country_name, get_address
from orders.errors import Conflict, Invalid, NotFound
from orders.lifecycle import IllegalTransition
from orders.models import Order, OrderStatus, Product, Quote
from orders.money import total as checked_total
from orders.shipping import DAP_NOTE, DDP_NOTE, NotShippable, duties, shipping_for, tracking_public


class AddressRequired(Invalid):
    code = "address_required"


class PaymentStarted(Conflict):
    code = "payment_started"


class OrderExpired(Conflict):
    code = "order_expired"


class OrderChanged(Conflict):
    """The order's total changed (a checkout to another address) while a provider was
    preparing its payment for the old total: that payment is dropped, never recorded."""

    code = "order_changed"


SHIP_TO = ("name", "line1", "line2", "city", "region", "postal_code", "country", "phone")


def require_ship_to(order: Order) -> None:
    """AddressRequired (422) unless the order has been checked out to an address."""
    if order.ship_country is None:
        raise AddressRequired(
            f"order {order.id} has no ship-to address: POST /api/orders/{order.id}/checkout with an address_id first",
            field="address_id")


def ship_to_public(order: Order) -> dict[str, Any] | None:
    if order.ship_country is None:
        return None
    body = {name: getattr(order, f"ship_{name}") for name in SHIP_TO}
    body["country_name"] = country_name(order.ship_country)
    return body


def delivery_public(order: Order) -> dict[str, Any]:
    """The order's checkout and delivery facts, merged into the order's JSON."""
    return {
        "items_total": order.unit_price * order.quantity,
        "ship_to": ship_to_public(order),
        "shipping_amount": order.shipping_amount,
        "duties_amount": order.duties_amount,
        "incoterm": order.incoterm,
        "tracking": tracking_public(order.carrier, order.tracking_number),
    }


async def _buyers_order(session: AsyncSession, order_id: int, buyer_id: int) -> Order:
    order = await session.get(Order, order_id)
    if order is None or order.buyer_id != buyer_id:
        raise NotFound(f"no order {order_id}")
    return order


async def check_out(session: AsyncSession, order_id: int, buyer_id: int, address_id: int, at: datetime) -> Order:
    """Give the buyer's pending order the ship-to address `address_id` and price its
    shipping and duties. Refusals (nothing changes): NotFound, 409 illegal_transition /
    order_expired / payment_started, 422 with field address_id (unknown address,
    not_shippable, shipping_on_quote)."""
    order = await _buyers_order(session, order_id, buyer_id)
    if order.status is not OrderStatus.pending:
        raise IllegalTransition(f"an order that is {order.status.value} cannot be checked out",
                                current_status=order.status.value)
    if order.expires_at is not None and order.expires_at <= at:
        raise OrderExpired("the hold on this order has ended; place it again", expires_at=order.expires_at.isoformat())
    if order.payment_ref is not None:
        raise PaymentStarted("payment has started for this order: its address and total can no longer change",
                             payment_provider=order.payment_provider or "")
    try:
        address = await get_address(session, buyer_id, address_id)
    except AddressNotFound as exc:
        raise Invalid(exc.message, field="address_id") from None
    goods = checked_total(order.unit_price, order.quantity)
    duty: int | None = None
    if order.quote_id is not None:
        quote = await session.get(Quote, order.quote_id)
        assert quote is not None
        if address.country != quote.destination_country:
            raise NotShippable(f"this order was quoted for delivery to {country_name(quote.destination_country)}",
                               field="address_id", country=address.country)
        shipping, incoterm = 0, quote.incoterm
    else:
        product = await session.get(Product, order.product_id)
        assert product is not None
        priced = await shipping_for(session, product, order.quantity, address.country)
        shipping, incoterm = priced.amount, priced.incoterm
        duty = duties(goods, priced.duty_rate_bp)
    total = checked_total(goods + shipping + (duty or 0), 1, field="address_id")
    # Less its discount lines (a coupon, points: orders/coupons.py), never below 0.
    total = max(0, total - await coupons.discount_total(session, order.id))
    values: dict[str, object] = {f"ship_{name}": getattr(address, name) for name in SHIP_TO}
    values.update(shipping_amount=shipping, duties_amount=duty, incoterm=incoterm, total=total, updated_at=at)
    # Compare-and-set: a payment that started (or a sweep that expired the order) since
    # it was read wins, and this checkout changes nothing.
    done = await session.execute(
        update(Order).where(Order.id == order.id, Order.status == OrderStatus.pending, Order.payment_ref.is_(None))
        .values(**values).execution_options(synchronize_session=False))
    await session.refresh(order)
    if done.rowcount != 1:
        if order.status is not OrderStatus.pending:
            raise IllegalTransition(f"the order became {order.status.value} meanwhile",
                                    current_status=order.status.value)
        raise PaymentStarted("payment started for this order meanwhile")
    return order


async def summary(session: AsyncSession, order: Order, offer: Callable[[str], Iterable[str]]) -> dict[str, Any]:
    """What the checkout page shows: items, ship-to, shipping, duties or the DAP note,
    total, currency, the hold's end and the payment providers offered (`offer(currency)`)."""
    product = await session.get(Product, order.product_id)
    goods = order.unit_price * order.quantity
    checked = order.ship_country is not None
    if order.incoterm == "DDP":
        note = DDP_NOTE
    elif order.quote_id is not None and checked:
        note = f"Shipping and duties as agreed in the quote (incoterm {order.incoterm})."
    else:
        note = DAP_NOTE
    return {
        "order_id": order.id,
        "status": order.status.value,
        "items": [{"product_id": order.product_id, "name": product.name if product else None,
                   "quantity": order.quantity, "unit_price": order.unit_price, "total": goods}],
        "items_total": goods,
        "ship_to": ship_to_public(order),
        "shipping": order.shipping_amount if checked else None,
        "incoterm": order.incoterm or "DAP",
        "duties": order.duties_amount,
        "duties_note": note,
        "total": order.total,
        "currency": order.currency,
        # Discount lines (orders/coupons.py): {coupon: {amount, code} | null, points: amount | null}
        "discounts": (await coupons.discounts_of(session, [order.id])).get(order.id, {"coupon": None, "points": None}),
        "expires_at": order.expires_at.isoformat() if order.expires_at else None,
        "payable": checked and order.status is OrderStatus.pending,
        "payment_providers": sorted(offer(order.currency)),
        "payment_provider": order.payment_provider,
    }


async def summary_for(session: AsyncSession, order_id: int, buyer_id: int,
                      offer: Callable[[str], Iterable[str]]) -> dict[str, Any]:
    return await summary(session, await _buyers_order(session, order_id, buyer_id), offer)
