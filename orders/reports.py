"""Reports: audience, orders, paid revenue and what sold, per show, segment, committee
and broker; the funnel from viewers to paying buyers; a show's audience over time.

Every page and route that shows a sale counts it here (`SALE`, `is_sale`), so the admin
page, the report API and the CSV exports cannot disagree (issue 15, item 7: the admin
page had counted pending orders as sales).

Definitions (also in docs/orders.md):
- a sale is an order that is paid, shipped or delivered (not pending, cancelled, expired
  or refunded); revenue is the sales' totals per currency — amounts of different
  currencies are never added together. Refunds are subtracted: gross (every order ever
  paid, `paid_at` set) − refunds (those refunded since) = revenue;
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

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import ColumnElement, case, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.models import Committee, Order, OrderStatus, Product, Quote, Segment, Show, ShowViewer, User
from orders.giveaways import not_a_giveaway  # issue 17.4: prizes are not sales
from orders.shows import get_show

SALE = (OrderStatus.paid, OrderStatus.shipped, OrderStatus.delivered)
VIEWERS_COUNTED_AS = (
    "people: each signed-in user once, plus anonymous viewers counted at most "
    "anonymous_viewers_per_address per client address (IPv6: per /64) and node"
)
TOP_PRODUCTS = 5


def is_sale() -> ColumnElement[bool]:
    """The one definition of a sale, for every query that counts one."""
    # Issue 17.4: a giveaway's prize (a zero-price order, orders/giveaways.py) is not a sale.
    return Order.status.in_(SALE) & not_a_giveaway()


def was_paid() -> ColumnElement[bool]:
    """Orders that were paid at some point: the sales and the refunded ones."""
    # Issue 17.4: nor was a giveaway's prize ever paid for.
    return Order.status.in_((*SALE, OrderStatus.refunded)) & not_a_giveaway()


def is_refund() -> ColumnElement[bool]:
    """A refunded sale: subtracted from gross to give revenue."""
    return (Order.status == OrderStatus.refunded) & not_a_giveaway()


def _money(rows) -> dict[str, int]:
    return {currency: int(amount) for currency, amount in rows}


async def show_report(session: AsyncSession, show_id: int) -> dict[str, Any]:
    show = await get_show(session, show_id)
    of_show = Order.show_id == show_id
    paid = is_sale()

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
    refunds = _money((await session.execute(
        select(Order.currency, func.sum(Order.total)).where(of_show, is_refund())
        .group_by(Order.currency).order_by(Order.currency)
    )).all())
    buyers = await session.scalar(select(func.count(distinct(Order.buyer_id))).where(of_show, paid)) or 0
    placed_by = await session.scalar(select(func.count(distinct(Order.buyer_id))).where(of_show)) or 0

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
        "refunds": refunds,
        "buyers": buyers,
        "funnel": {"viewers": total_viewers, "buyers": placed_by, "paid_buyers": buyers},
        "conversion": round(buyers / total_viewers, 4) if total_viewers else 0.0,
        "segments": list(segments.values()),
        "committees": list(committees.values()),
        "top_products": [
            {"product_id": pid, "name": name, "quantity": int(quantity), "revenue": {currency: int(amount)}}
            for pid, name, currency, quantity, amount in top.all()
        ],
        "quotes_requested": quotes,
    }


# --- Across shows: sales and the funnel ---------------------------------------------------

REPORT_ROWS = 500  # shows in one funnel table: years of a weekly schedule


def _people(signed_in: Any, anonymous: Any) -> int:
    return int(signed_in or 0) + int(anonymous or 0)


def _anonymous_rows() -> ColumnElement[int]:
    # count(DISTINCT …) of the anonymous rows' ids: a join that repeats a row (a show with
    # two segments of one committee) still counts it once, on SQLite and PostgreSQL alike.
    return func.count(distinct(case((ShowViewer.user_id.is_(None), ShowViewer.id))))


def _buyer_counts() -> tuple[ColumnElement[int], ColumnElement[int]]:
    """(people who placed an order, people with a sale) among the grouped orders."""
    return (func.count(distinct(Order.buyer_id)),
            func.count(distinct(case((is_sale(), Order.buyer_id)))))


def _conversion(paid_buyers: int, viewers: int | None) -> float | None:
    if viewers is None:
        return None
    return round(paid_buyers / viewers, 4) if viewers else 0.0


async def sales_by_committee(session: AsyncSession) -> list[dict[str, Any]]:
    """Per committee and currency: sales (count and revenue), gross paid, refunds.
    revenue = gross − refunds, by construction of `SALE` and `was_paid`."""
    refunded = is_refund()
    rows = await session.execute(
        select(Committee.id, Committee.code, Order.currency,
               func.count(Order.id).filter(is_sale()),
               func.coalesce(func.sum(case((is_sale(), Order.total), else_=0)), 0),
               func.coalesce(func.sum(Order.total), 0),
               func.count(Order.id).filter(refunded),
               func.coalesce(func.sum(case((refunded, Order.total), else_=0)), 0))
        .join(Order, Order.committee_id == Committee.id)
        .where(was_paid())
        .group_by(Committee.id, Committee.code, Order.currency)
        .order_by(Committee.code, Order.currency)
    )
    return [
        {"committee_id": cid, "committee": code, "currency": currency, "orders": int(count),
         "revenue": int(revenue), "gross": int(gross), "refunded_orders": int(refunded_count),
         "refunds": int(refunds)}
        for cid, code, currency, count, revenue, gross, refunded_count, refunds in rows.all()
    ]


async def funnel_by_show(session: AsyncSession) -> list[dict[str, Any]]:
    """Each show (newest first): viewers (people, as the audience ledger counts them) →
    buyers (placed an order of the show) → paid buyers (at least one sale)."""
    shows = (await session.execute(
        select(Show.id, Show.title, Show.status, Show.started_at)
        .order_by(Show.scheduled_at.desc(), Show.id.desc()).limit(REPORT_ROWS)
    )).all()
    ids = [row[0] for row in shows]
    audience = {show_id: _people(s, a) for show_id, s, a in (await session.execute(
        select(ShowViewer.show_id, func.count(distinct(ShowViewer.user_id)), _anonymous_rows())
        .where(ShowViewer.show_id.in_(ids)).group_by(ShowViewer.show_id)
    )).all()}
    buyers = {show_id: (int(b), int(p)) for show_id, b, p in (await session.execute(
        select(Order.show_id, *_buyer_counts()).where(Order.show_id.in_(ids)).group_by(Order.show_id)
    )).all()}
    result = []
    for show_id, title, status, started_at in shows:
        viewers = audience.get(show_id, 0)
        placed, paid = buyers.get(show_id, (0, 0))
        result.append({"show_id": show_id, "title": title, "status": status.value,
                       "started_at": started_at.isoformat() if started_at else None,
                       "viewers": viewers, "buyers": placed, "paid_buyers": paid,
                       "conversion": _conversion(paid, viewers)})
    return result


async def funnel_by_segment(session: AsyncSession, show_id: int | None = None) -> list[dict[str, Any]]:
    """Each segment: its show's viewers (the ledger records who watched a show, not which
    segment they saw), the people who ordered while it was on, those who paid."""
    query = (select(Segment.id, Segment.title, Segment.show_id, Show.title, Committee.code)
             .join(Show, Show.id == Segment.show_id).join(Committee, Committee.id == Segment.committee_id)
             .order_by(Show.scheduled_at.desc(), Show.id.desc(), Segment.position))
    if show_id is not None:
        query = query.where(Segment.show_id == show_id)
    segments = (await session.execute(query.limit(REPORT_ROWS * 4))).all()
    show_ids = {row[2] for row in segments}
    audience = {sid: _people(s, a) for sid, s, a in (await session.execute(
        select(ShowViewer.show_id, func.count(distinct(ShowViewer.user_id)), _anonymous_rows())
        .where(ShowViewer.show_id.in_(show_ids)).group_by(ShowViewer.show_id)
    )).all()}
    buyers = {segment_id: (int(b), int(p)) for segment_id, b, p in (await session.execute(
        select(Order.segment_id, *_buyer_counts())
        .where(Order.segment_id.in_([row[0] for row in segments])).group_by(Order.segment_id)
    )).all()}
    result = []
    for segment_id, title, sid, show_title, committee in segments:
        viewers = audience.get(sid, 0)
        placed, paid = buyers.get(segment_id, (0, 0))
        result.append({"segment_id": segment_id, "title": title, "show_id": sid, "show_title": show_title,
                       "committee": committee, "viewers": viewers, "buyers": placed, "paid_buyers": paid,
                       "conversion": _conversion(paid, viewers)})
    return result


async def funnel_by_committee(session: AsyncSession) -> list[dict[str, Any]]:
    """Each committee: the people who watched a show with a segment of it (each
    signed-in person once however many such shows they saw) → buyers of orders credited
    to it → paid buyers."""
    committees = (await session.execute(select(Committee.id, Committee.code).order_by(Committee.code))).all()
    audience = {cid: _people(s, a) for cid, s, a in (await session.execute(
        select(Segment.committee_id, func.count(distinct(ShowViewer.user_id)), _anonymous_rows())
        .join(ShowViewer, ShowViewer.show_id == Segment.show_id).group_by(Segment.committee_id)
    )).all()}
    buyers = {cid: (int(b), int(p)) for cid, b, p in (await session.execute(
        select(Order.committee_id, *_buyer_counts()).where(Order.committee_id.is_not(None))
        .group_by(Order.committee_id)
    )).all()}
    result = []
    for cid, code in committees:
        viewers = audience.get(cid, 0)
        placed, paid = buyers.get(cid, (0, 0))
        result.append({"committee_id": cid, "committee": code, "viewers": viewers, "buyers": placed,
                       "paid_buyers": paid, "conversion": _conversion(paid, viewers)})
    return result


async def funnel_by_broker(session: AsyncSession) -> list[dict[str, Any]]:
    """Each member whose co-view rooms brought orders: buyers → paid buyers. Viewers are
    None: who sat in a co-view room is live presence only, never recorded."""
    rows = (await session.execute(
        select(Order.broker_id, User.name, *_buyer_counts())
        .join(User, User.id == Order.broker_id)
        .where(Order.broker_id.is_not(None))
        .group_by(Order.broker_id, User.name).order_by(Order.broker_id)
    )).all()
    return [{"broker_id": broker_id, "name": name, "viewers": None, "buyers": int(placed),
             "paid_buyers": int(paid), "conversion": None}
            for broker_id, name, placed, paid in rows]


# --- A show's audience over time ----------------------------------------------------------

async def audience_curve(session: AsyncSession, show_id: int, now: datetime) -> dict[str, Any] | None:
    """The people who had joined the show by each moment, and its sales, in seconds from
    its start (None for a show that never started).

    The audience ledger records when each viewer first came (`show_viewers.first_seen`),
    not when they left, so the curve is the audience gathered so far, rising with each
    newcomer; how many watched at once is known only at its peak (`peak_viewers`)."""
    show = await get_show(session, show_id)
    if show.started_at is None:
        return None
    start = show.started_at
    end = show.ended_at if show.ended_at is not None and show.ended_at > start else max(now, start)
    span = max((end - start).total_seconds(), 1.0)

    def offset(at: datetime) -> float:
        return min(max((at - start).total_seconds(), 0.0), span)

    seen = list(await session.scalars(
        select(ShowViewer.first_seen).where(ShowViewer.show_id == show_id).order_by(ShowViewer.first_seen)
    ))
    points = [(offset(at), count) for count, at in enumerate(seen, start=1) if at <= end]
    sales = [
        {"order_id": order_id, "at": offset(created), "product": name, "quantity": quantity, "total": total,
         "currency": currency}
        for order_id, created, name, quantity, total, currency in (await session.execute(
            select(Order.id, Order.created_at, Product.name, Order.quantity, Order.total, Order.currency)
            .join(Product, Product.id == Order.product_id)
            .where(Order.show_id == show_id, is_sale(), Order.created_at >= start, Order.created_at <= end)
            .order_by(Order.created_at, Order.id)
        )).all()
    ]
    return {"show_id": show.id, "title": show.title, "started_at": start.isoformat(), "seconds": span,
            "points": points, "people": len(points), "peak": show.peak_viewers, "sales": sales}


# --- CSV ---------------------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list for CSV injection


def csv_cell(value: Any) -> Any:
    """A spreadsheet must not run a name as a formula: text starting with = + - @ (or a
    tab or carriage return) gets a leading apostrophe. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def amount(minor: int, currency: str) -> Decimal:
    """Minor units as the currency's decimal amount: 3600 USD → 36.00, 32000 KRW → 32000."""
    digits = get_currency_precision(currency)
    return Decimal(minor).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a byte order mark (Excel then reads Hangul and Cyrillic right), every
    field quoted as the csv module needs, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else csv_cell(v) for v in row])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


async def report_table(session: AsyncSession, name: str) -> tuple[list[str], list[list[Any]]]:
    """One exportable report table by name (`TABLES`): its header and rows."""
    if name == "sales":
        rows = await sales_by_committee(session)
        return (["committee", "currency", "sales", "revenue", "gross_paid", "refunded_orders", "refunds"],
                [[r["committee"], r["currency"], r["orders"], amount(r["revenue"], r["currency"]),
                  amount(r["gross"], r["currency"]), r["refunded_orders"], amount(r["refunds"], r["currency"])]
                 for r in rows])
    if name == "shows":
        rows = await funnel_by_show(session)
        return (["show_id", "title", "status", "started_at", "viewers", "buyers", "paid_buyers", "conversion"],
                [[r["show_id"], r["title"], r["status"], r["started_at"], r["viewers"], r["buyers"],
                  r["paid_buyers"], r["conversion"]] for r in rows])
    if name == "segments":
        rows = await funnel_by_segment(session)
        return (["show_id", "show_title", "segment_id", "segment", "committee", "viewers", "buyers",
                 "paid_buyers", "conversion"],
                [[r["show_id"], r["show_title"], r["segment_id"], r["title"], r["committee"], r["viewers"],
                  r["buyers"], r["paid_buyers"], r["conversion"]] for r in rows])
    if name == "committees":
        rows = await funnel_by_committee(session)
        return (["committee", "viewers", "buyers", "paid_buyers", "conversion"],
                [[r["committee"], r["viewers"], r["buyers"], r["paid_buyers"], r["conversion"]] for r in rows])
    if name == "brokers":
        from orders.brokers import broker_report  # brokers imports nothing from here

        funnel = {r["broker_id"]: r for r in await funnel_by_broker(session)}
        credit = await broker_report(session)
        out = []
        for entry in credit:
            f = funnel.get(entry["broker"]["id"], {})
            for currency, line in entry["currencies"].items():
                out.append([entry["broker"]["id"], entry["broker"]["name"], f.get("buyers", 0),
                            f.get("paid_buyers", 0), currency, line["orders"],
                            amount(line["revenue"], currency), amount(line["commission"], currency)])
        for broker_id, f in funnel.items():
            if not any(e["broker"]["id"] == broker_id for e in credit):
                out.append([broker_id, f["name"], f["buyers"], f["paid_buyers"], None, 0, None, None])
        return (["broker_id", "name", "buyers", "paid_buyers", "currency", "credited_orders", "revenue",
                 "commission"], out)
    raise KeyError(name)


TABLES = ("sales", "shows", "segments", "committees", "brokers")
