"""An order's life: pending → paid → shipped → delivered, or cancelled / expired / refunded.

Every move is a compare-and-set on the status the order had when read, so two racing
moves (a payment webhook and the expiry sweeper, say) cannot both win: the loser sees
the new status and gets `illegal_transition`. Moves that end a reservation put the
stock back in the same transaction; moves that undo a sale reverse its broker credit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from orders import brokers, coupons, mileage, notifications
from orders.errors import Conflict, NotFound
from orders.inventory import put_back
from orders.models import Order, OrderStatus

S = OrderStatus

# to-status → the statuses it may come from
ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.paid: frozenset({S.pending}),
    S.shipped: frozenset({S.paid}),
    S.delivered: frozenset({S.shipped}),
    S.cancelled: frozenset({S.pending}),
    S.expired: frozenset({S.pending}),
    # After shipping the goods are gone: a refund then returns money, not stock.
    S.refunded: frozenset({S.paid, S.shipped, S.delivered}),
}
RESTOCKS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.cancelled: frozenset({S.pending}),
    S.expired: frozenset({S.pending}),
    S.refunded: frozenset({S.paid}),
}
UNDOES_SALE = frozenset({S.cancelled, S.expired, S.refunded})
# to-status → the column that keeps when the order got there (paid_at: see `move`)
STEP_TIMES: dict[OrderStatus, str] = {
    S.shipped: "shipped_at", S.delivered: "delivered_at", S.refunded: "refunded_at",
    S.cancelled: "cancelled_at", S.expired: "cancelled_at",
}


class IllegalTransition(Conflict):
    code = "illegal_transition"


@dataclass(frozen=True)
class Moved:
    order: Order
    previous: OrderStatus
    stock: int | None  # the product's stock after a restock, else None


async def move(session: AsyncSession, order_id: int, to: OrderStatus, at: datetime, **changes: object) -> Moved:
    """Move an order to `to` if its current status allows it; IllegalTransition otherwise."""
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    previous = order.status
    if previous not in ALLOWED[to]:
        raise IllegalTransition(f"an order that is {previous.value} cannot become {to.value}",
                                current_status=previous.value)
    values: dict[str, object] = {"status": to, "updated_at": at, **changes}
    if to is S.paid:
        values["paid_at"] = at
    if to in STEP_TIMES:  # the buyer's timeline (web/pages_buyer.py)
        values[STEP_TIMES[to]] = at
    done = await session.execute(
        update(Order).where(Order.id == order_id, Order.status == previous).values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # someone else moved it since we read it
        await session.refresh(order)
        raise IllegalTransition(f"the order became {order.status.value} meanwhile", current_status=order.status.value)
    await session.refresh(order)
    stock = None
    if previous in RESTOCKS.get(to, frozenset()):
        stock = await put_back(session, order.product_id, order.quantity)
    if to is S.paid:
        await brokers.credit_order(session, order, at)
        await mileage.earn_for_order(session, order, at)  # the buyer's and the broker's points
        await notifications.order_paid(session, order, at)  # queued with the move: a rollback sends nothing
    elif to is S.shipped:
        await notifications.order_shipped(session, order, at)
    elif to in UNDOES_SALE:
        await brokers.reverse_credit(session, [order.id], at)
    if to in (S.cancelled, S.expired):  # a coupon's use is given back (orders/coupons.py)
        await coupons.release_uses(session, [order.id], at)
    if to in UNDOES_SALE:  # points redeemed come back; a refund reverses points earned
        await mileage.undo_for_orders(session, [order.id], to is S.refunded, at)
    return Moved(order, previous, stock)
