"""Broker credit: the member whose co-view room a sale came from earns a commission.

Credited when an order is paid, or when a quote is accepted (the order it creates).
The rate is the basis points of the order's committee — the live segment's committee
when the order was placed, else the product's own committee. Amounts are integer minor
units rounded down: commission = revenue * commission_bp // 10000, so the association
never owes a fraction of a cent. A refund, cancellation or expiry of a credited order
marks its credit reversed; the row stays for the audit trail.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orders.models import BrokerCredit, Committee, CoviewRoom, Order, Product, User


def commission(revenue: int, rate_bp: int) -> int:
    return revenue * rate_bp // 10000


async def credit_order(session: AsyncSession, order: Order, at: datetime) -> BrokerCredit | None:
    """Credit the order's broker once (a second call for the same order does nothing)."""
    if order.broker_id is None:
        return None
    existing = await session.scalar(select(BrokerCredit).where(BrokerCredit.order_id == order.id))
    if existing is not None:
        return existing
    committee_id = order.committee_id
    if committee_id is None:
        committee_id = await session.scalar(select(Product.committee_id).where(Product.id == order.product_id))
    rate = await session.scalar(select(Committee.commission_bp).where(Committee.id == committee_id)) or 0
    credit = BrokerCredit(
        broker_id=order.broker_id,
        order_id=order.id,
        committee_id=committee_id,
        # The goods only: after checkout `total` also holds shipping and duties, which
        # are passed on to carriers and customs, not commissioned (orders/checkout.py).
        revenue=order.unit_price * order.quantity,
        amount=commission(order.unit_price * order.quantity, rate),
        currency=order.currency,
        rate_bp=rate,
        created_at=at,
    )
    session.add(credit)
    await session.flush()
    return credit


async def reverse_credit(session: AsyncSession, order_ids: Collection[int], at: datetime) -> None:
    """Mark the credits of these orders reversed (refunded, cancelled or expired), in one statement."""
    await session.execute(
        update(BrokerCredit)
        .where(BrokerCredit.order_id.in_(order_ids), BrokerCredit.reversed_at.is_(None))
        .values(reversed_at=at)
        .execution_options(synchronize_session=False)
    )


async def broker_report(session: AsyncSession) -> list[dict[str, Any]]:
    """Members with credited sales: orders, revenue and commission per currency."""
    rows = await session.execute(
        select(
            BrokerCredit.broker_id,
            BrokerCredit.currency,
            func.count(BrokerCredit.id),
            func.sum(BrokerCredit.revenue),
            func.sum(BrokerCredit.amount),
        )
        .where(BrokerCredit.reversed_at.is_(None))
        .group_by(BrokerCredit.broker_id, BrokerCredit.currency)
        .order_by(BrokerCredit.broker_id, BrokerCredit.currency)
    )
    by_broker: dict[int, dict[str, Any]] = {}
    for broker_id, currency, count, revenue, amount in rows.all():
        entry = by_broker.setdefault(broker_id, {"orders": 0, "currencies": {}})
        entry["orders"] += count
        entry["currencies"][currency] = {"orders": count, "revenue": int(revenue), "commission": int(amount)}
    if not by_broker:
        return []
    users = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(by_broker)))}
    report = []
    for broker_id, entry in by_broker.items():
        user = users.get(broker_id)
        report.append({
            "broker": {"id": broker_id, "name": user.name if user else None, "city": user.city if user else None,
                       "country": user.country if user else None},
            "orders": entry["orders"],
            "currencies": entry["currencies"],
        })
    return report


CREDITED_ROWS = 200  # a room's orders in one answer: a live show's worth, not an export


async def credited_orders(session: AsyncSession, room: CoviewRoom) -> list[dict[str, Any]]:
    """Orders placed from this room and credited to its owner as broker, newest first,
    each with the owner's commission once it is earned (paid) and not reversed."""
    rows = await session.execute(
        select(Order, Product.name, BrokerCredit)
        .join(Product, Product.id == Order.product_id)
        .outerjoin(BrokerCredit, BrokerCredit.order_id == Order.id)
        .where(Order.coview_id == room.id, Order.broker_id == room.owner_id)
        .order_by(Order.id.desc())
        .limit(CREDITED_ROWS)
    )
    return [
        {
            "id": order.id,
            "product": {"id": order.product_id, "name": name},
            "quantity": order.quantity,
            "total": order.total,
            "currency": order.currency,
            "status": order.status.value,
            "created_at": order.created_at.isoformat() if order.created_at else None,
            "commission": credit.amount if credit is not None and credit.reversed_at is None else None,
        }
        for order, name, credit in rows.all()
    ]
