"""Show reports: audience, orders, paid revenue and what sold, per segment and committee.

Definitions (also in docs/orders.md):
- paid revenue counts orders that are paid, shipped or delivered (not pending,
  cancelled, expired or refunded), per currency — amounts of different currencies are
  never added together;
- buyers are distinct users with at least one paid order from the show;
- viewers count people, not sockets (VIEWERS_COUNTED_AS): each signed-in user once,
  plus anonymous viewers, of which one client address adds at most a few (the rooms
  give an address's anonymous sockets `anonymous_viewers_per_address` viewer keys per
  node; rooms/admission.py). The live count and the peak count the same way. Rows from
  before that rule (one per anonymous socket) still count as they are;
- conversion = buyers ÷ total viewers, rounded to 4 places; 0 when nobody watched;
- top products rank paid quantity, then paid revenue.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.models import Committee, Order, OrderStatus, Product, Quote, ShowViewer
from orders.shows import get_show

PAID = (OrderStatus.paid, OrderStatus.shipped, OrderStatus.delivered)
VIEWERS_COUNTED_AS = (
    "people: each signed-in user once, plus anonymous viewers counted at most "
    "anonymous_viewers_per_address per client address (IPv6: per /64) and node"
)
TOP_PRODUCTS = 5


def _money(rows) -> dict[str, int]:
    return {currency: int(amount) for currency, amount in rows}


async def show_report(session: AsyncSession, show_id: int) -> dict[str, Any]:
    show = await get_show(session, show_id)
    of_show = Order.show_id == show_id
    paid = Order.status.in_(PAID)

    signed_in, anonymous = (await session.execute(
        select(func.count(distinct(ShowViewer.user_id)),
               func.count(ShowViewer.id).filter(ShowViewer.user_id.is_(None)))
        .where(ShowViewer.show_id == show_id)
    )).one()
    total_viewers = int(signed_in or 0) + int(anonymous or 0)
    by_status = dict((await session.execute(
        select(Order.status, func.count(Order.id)).where(of_show).group_by(Order.status)
    )).all())
    revenue = _money((await session.execute(
        select(Order.currency, func.sum(Order.total)).where(of_show, paid).group_by(Order.currency)
        .order_by(Order.currency)
    )).all())
    buyers = await session.scalar(select(func.count(distinct(Order.buyer_id))).where(of_show, paid)) or 0

    segments: dict[int | None, dict[str, Any]] = {}
    for segment in show.segments:
        segments[segment.id] = {
            "segment_id": segment.id, "title": segment.title, "committee": segment.committee.code,
            "orders": 0, "paid_orders": 0, "revenue": {},
        }
    rows = await session.execute(
        select(Order.segment_id, Order.currency, func.count(Order.id), func.sum(Order.total))
        .where(of_show, paid).group_by(Order.segment_id, Order.currency)
    )
    counts = dict((await session.execute(
        select(Order.segment_id, func.count(Order.id)).where(of_show).group_by(Order.segment_id)
    )).all())
    for segment_id, count in counts.items():
        segments.setdefault(segment_id, {"segment_id": segment_id, "title": None, "committee": None,
                                         "orders": 0, "paid_orders": 0, "revenue": {}})["orders"] = count
    for segment_id, currency, count, amount in rows.all():
        entry = segments[segment_id]
        entry["paid_orders"] += count
        entry["revenue"][currency] = int(amount)

    committees: dict[str, dict[str, Any]] = {}
    rows = await session.execute(
        select(Committee.code, Order.currency, func.count(Order.id), func.sum(Order.total))
        .join(Committee, Committee.id == Order.committee_id)
        .where(of_show, paid).group_by(Committee.code, Order.currency).order_by(Committee.code)
    )
    for code, currency, count, amount in rows.all():
        entry = committees.setdefault(code, {"committee": code, "paid_orders": 0, "revenue": {}})
        entry["paid_orders"] += count
        entry["revenue"][currency] = int(amount)

    top = await session.execute(
        select(Order.product_id, Product.name, Order.currency, func.sum(Order.quantity), func.sum(Order.total))
        .join(Product, Product.id == Order.product_id)
        .where(of_show, paid)
        .group_by(Order.product_id, Product.name, Order.currency)
        .order_by(func.sum(Order.quantity).desc(), func.sum(Order.total).desc(), Order.product_id)
        .limit(TOP_PRODUCTS)
    )
    quotes = await session.scalar(select(func.count(Quote.id)).where(Quote.show_id == show_id)) or 0

    return {
        "show": {"id": show.id, "title": show.title, "status": show.status.value},
        "viewers": {"peak": show.peak_viewers, "total": total_viewers, "signed_in": int(signed_in or 0),
                    "anonymous": int(anonymous or 0), "counted_as": VIEWERS_COUNTED_AS},
        "orders": {"total": sum(by_status.values()),
                   "by_status": {status.value: count for status, count in sorted(by_status.items(),
                                                                                 key=lambda kv: kv[0].value)}},
        "paid_revenue": revenue,
        "buyers": buyers,
        "conversion": round(buyers / total_viewers, 4) if total_viewers else 0.0,
        "segments": list(segments.values()),
        "committees": list(committees.values()),
        "top_products": [
            {"product_id": pid, "name": name, "quantity": int(quantity), "revenue": {currency: int(amount)}}
            for pid, name, currency, quantity, amount in top.all()
        ],
        "quotes_requested": quotes,
    }
