"""B2B quotes: industrial goods and packages are quoted, not bought off the shelf.

requested → answered (a host or admin sets a unit price and validity) → accepted (the
buyer, before `valid_until`: an order is created with the quoted price and the stock
reserved) or declined. Nobody answers their own request, and a price of 0 or below
`min_price_share` of the list price needs an admin (issue 14, item 9: a host quoted
their own request at 0 and took two $120,000 machines for nothing). A quote carries
the same show/segment/committee/co-view/broker attribution as an order, taken when it
is requested, and passes it to its order.
Accepting credits the broker at once (see orders/brokers.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orders import brokers, notifications
from orders.attribution import Ask, Audience, attribute
from orders.errors import Conflict, Forbidden, Invalid, NotFound
from orders.inventory import take
from orders.models import Order, OrderStatus, Product, ProductKind, Quote, QuoteStatus, Role, Show, User
from orders.money import total as checked_total

INCOTERMS = ("EXW", "FOB", "CIF", "DAP", "DDP")
MAX_QUOTE_QUANTITY = 100_000
MAX_VALID_DAYS = 180


class NotQuotable(Invalid):
    code = "not_quotable"


class QuoteExpired(Conflict):
    code = "quote_expired"


class QuoteState(Conflict):
    code = "illegal_transition"


class OwnQuote(Forbidden):
    code = "own_quote"


class PriceNeedsAdmin(Forbidden):
    code = "price_needs_admin"


@dataclass(frozen=True)
class QuoteRequest:
    buyer_id: int
    product_id: int
    quantity: int
    destination_country: str
    incoterm: str
    note: str = ""
    show_id: int | None = None
    coview: str | None = None


def quote_public(quote: Quote) -> dict[str, Any]:
    return {
        "id": quote.id,
        "status": quote.status.value,
        "buyer_id": quote.buyer_id,
        "product_id": quote.product_id,
        "quantity": quote.quantity,
        "destination_country": quote.destination_country,
        "incoterm": quote.incoterm,
        "note": quote.note,
        "unit_price": quote.unit_price,
        "currency": quote.currency,
        "total": quote.unit_price * quote.quantity if quote.unit_price is not None else None,  # bounded when answered
        "valid_until": quote.valid_until.isoformat() if quote.valid_until else None,
        "show_id": quote.show_id,
        "segment_id": quote.segment_id,
        "committee_id": quote.committee_id,
        "broker_id": quote.broker_id,
        "order_id": quote.order_id,
        "created_at": quote.created_at.isoformat(),
        "answered_at": quote.answered_at.isoformat() if quote.answered_at else None,
    }


async def request_quote(session: AsyncSession, request: QuoteRequest, at: datetime,
                        audience: Audience | None = None) -> Quote:
    product = await session.get(Product, request.product_id)
    if product is None:
        raise Invalid(f"no product {request.product_id}", field="product_id")
    if product.kind is not ProductKind.industrial:
        raise NotQuotable("retail products are ordered, not quoted: use POST /api/orders", field="product_id")
    if request.quantity < max(1, product.moq):
        raise Invalid(f"the minimum order quantity is {product.moq}", field="quantity")
    if request.quantity > MAX_QUOTE_QUANTITY:
        raise Invalid(f"at most {MAX_QUOTE_QUANTITY} per quote", field="quantity")
    if request.incoterm not in INCOTERMS:
        raise Invalid(f"incoterm is one of {', '.join(INCOTERMS)}", field="incoterm")
    [attribution] = await attribute(session, [Ask(request.buyer_id, request.show_id, request.coview)], at, audience)
    if isinstance(attribution, Invalid):
        raise attribution
    quote = Quote(
        buyer_id=request.buyer_id,
        product_id=product.id,
        quantity=request.quantity,
        destination_country=request.destination_country.upper(),
        incoterm=request.incoterm,
        note=request.note,
        status=QuoteStatus.requested,
        created_at=at,
        **attribution.columns(),
    )
    session.add(quote)
    await session.flush()
    return quote


async def _show_host(session: AsyncSession, show_id: int | None) -> int | None:
    if show_id is None:
        return None
    return await session.scalar(select(Show.host_id).where(Show.id == show_id))


async def can_answer(session: AsyncSession, user: User, quote: Quote) -> bool:
    """Admins answer every quote; a host answers the quotes asked during their shows."""
    if user.role is Role.admin:
        return True
    return user.role is Role.host and await _show_host(session, quote.show_id) == user.id


async def get_quote_for(session: AsyncSession, quote_id: int, user: User) -> Quote:
    quote = await session.get(Quote, quote_id)
    if quote is None or (quote.buyer_id != user.id and not await can_answer(session, user, quote)):
        raise NotFound(f"no quote {quote_id}")
    return quote


async def list_quotes(session: AsyncSession, user: User, limit: int = 200, *,
                      show_id: int | None = None) -> list[Quote]:
    """The buyer's own quotes; for a host those of their shows; for an admin all.
    `show_id` narrows any of these to one show (the studio's quotes panel)."""
    stmt = select(Quote).order_by(Quote.id.desc()).limit(limit)
    if show_id is not None:
        stmt = stmt.where(Quote.show_id == show_id)
    if user.role is Role.admin:
        pass
    elif user.role is Role.host:
        stmt = stmt.join(Show, Show.id == Quote.show_id).where(Show.host_id == user.id)
    else:
        stmt = stmt.where(Quote.buyer_id == user.id)
    return list(await session.scalars(stmt))


async def answer_quote(session: AsyncSession, quote_id: int, user: User, *, unit_price: int, valid_days: int,
                       at: datetime, min_price_share: float = 0.5) -> Quote:
    """Set a quote's price. `min_price_share`: below this share of the list price (and
    at 0) only an admin may answer."""
    quote = await session.get(Quote, quote_id)
    if quote is None:
        raise NotFound(f"no quote {quote_id}")
    if quote.buyer_id == user.id:
        raise OwnQuote("nobody answers their own quote request; another host or an admin must")
    if not await can_answer(session, user, quote):
        raise Forbidden("only an admin, or the host of the show it was asked in, answers a quote")
    if unit_price < 0:
        raise Invalid("unit_price must not be negative", field="unit_price")
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise Invalid(f"valid_days is 1 to {MAX_VALID_DAYS}", field="valid_days")
    checked_total(unit_price, quote.quantity, field="unit_price")
    list_price, currency = (await session.execute(
        select(Product.price, Product.currency).where(Product.id == quote.product_id))).one()
    floor = list_price * min_price_share
    if (unit_price == 0 or unit_price < floor) and user.role is not Role.admin:
        raise PriceNeedsAdmin(
            f"a unit price of 0 or below {min_price_share:.0%} of the list price ({list_price}) needs an admin",
            field="unit_price", list_price=list_price, min_unit_price=max(1, int(-(-floor // 1))))
    # Requested or already answered (a revised offer); never once accepted or declined.
    done = await session.execute(
        update(Quote)
        .where(Quote.id == quote_id, Quote.status.in_([QuoteStatus.requested, QuoteStatus.answered]))
        .values(status=QuoteStatus.answered, unit_price=unit_price, currency=currency,
                valid_until=at + timedelta(days=valid_days), answered_at=at)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(quote)
    if done.rowcount != 1:
        raise QuoteState(f"a quote that is {quote.status.value} cannot be answered", current_status=quote.status.value)
    await notifications.quote_answered(session, quote, at)
    return quote


async def decline_quote(session: AsyncSession, quote_id: int, buyer: User, at: datetime) -> Quote:
    quote = await _buyers_quote(session, quote_id, buyer)
    done = await session.execute(
        update(Quote)
        .where(Quote.id == quote_id, Quote.status.in_([QuoteStatus.requested, QuoteStatus.answered]))
        .values(status=QuoteStatus.declined)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(quote)
    if done.rowcount != 1:
        raise QuoteState(f"a quote that is {quote.status.value} cannot be declined", current_status=quote.status.value)
    return quote


async def accept_quote(session: AsyncSession, quote_id: int, buyer: User, at: datetime,
                       order_expiry: timedelta) -> tuple[Quote, Order, int]:
    """Accept an answered quote: the order (pending, quoted price) and the stock left."""
    quote = await _buyers_quote(session, quote_id, buyer)
    if quote.status is not QuoteStatus.answered:
        raise QuoteState(f"a quote that is {quote.status.value} cannot be accepted", current_status=quote.status.value)
    if quote.valid_until is None or quote.valid_until <= at:
        raise QuoteExpired("this quote is no longer valid; ask for a new one")
    # The compare-and-set on the quote comes first: of two racing accepts only one
    # goes on to reserve stock and create the order.
    done = await session.execute(
        update(Quote)
        .where(Quote.id == quote_id, Quote.status == QuoteStatus.answered)
        .values(status=QuoteStatus.accepted)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        await session.refresh(quote)
        raise QuoteState(f"the quote became {quote.status.value} meanwhile", current_status=quote.status.value)
    stock = await take(session, quote.product_id, quote.quantity)
    assert quote.unit_price is not None and quote.currency is not None
    order = Order(
        buyer_id=quote.buyer_id,
        idempotency_key=f"quote:{quote.id}",
        request_hash=None,
        product_id=quote.product_id,
        quantity=quote.quantity,
        unit_price=quote.unit_price,
        currency=quote.currency,
        total=checked_total(quote.unit_price, quote.quantity),
        status=OrderStatus.pending,
        show_id=quote.show_id,
        segment_id=quote.segment_id,
        committee_id=quote.committee_id,
        coview_id=quote.coview_id,
        broker_id=quote.broker_id,
        quote_id=quote.id,
        created_at=at,
        updated_at=at,
        expires_at=at + order_expiry,
    )
    session.add(order)
    await session.flush()
    await session.execute(
        update(Quote).where(Quote.id == quote.id).values(order_id=order.id)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(quote)
    await brokers.credit_order(session, order, at)
    await notifications.order_placed(session, order, at)
    return quote, order, stock


async def _buyers_quote(session: AsyncSession, quote_id: int, buyer: User) -> Quote:
    quote = await session.get(Quote, quote_id)
    if quote is None or quote.buyer_id != buyer.id:
        raise NotFound(f"no quote {quote_id}")
    return quote
