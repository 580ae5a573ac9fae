"""Flash deals: a product of the show's line-up sold at a deal price for a short time,
so many units, at most so many per buyer.

The host starts a deal (`FlashDeals.start`): the terms are checked (units within the
product's stock, a duration of 10 s to 20 min, an optional countdown before it opens),
the row is stored and the live state opened (orders/live_counters.py). A buy
(`FlashDeals.buy`) is judged there first, atomically on every node: open, units left,
the buyer within the limit. Only then is an ordinary pending order placed through the
order desk (orders/ordering.py) at the deal price — the stock gate takes the units from
`products.stock` as for any order, and checkout and payment follow as usual. If the
desk refuses (the product's last units went to a buyer outside the deal, a bad
attribution), the take is given back, so a refused buy takes nothing.

Exactness: the live state never lets more than `units` be taken, nor more than the
limit by one buyer, whichever nodes they buy on; the desk never lets the product go
below zero. The deal ends at its time or when its last unit is sold (`close`), exactly
once (a conditional UPDATE of its row); after that its price no longer applies.

Retries. A client may send its own idempotency key with a buy: a retry after a lost
answer gets the order the first attempt made (looked up before the live state is
asked; a retry racing its original is caught by the desk's key and its take given
back), so it never buys twice.

Given back. A buy whose order is later cancelled or expired while the deal runs gives
its units and the buyer's count back to the live state (`give_back_released`, run by
every node's selling sweeper): its `flash_deal_buys` row is marked `returned_at` with a
conditional UPDATE first, so each buy is given back once whichever nodes sweep.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from orders.db import Database
from orders.errors import Conflict, Invalid, NotFound, SoldOut
from orders.live_counters import (
    ENDED,
    INSUFFICIENT,
    NOT_OPEN,
    OK,
    OVER_LIMIT,
    SOLD_OUT,
    UNKNOWN,
    LiveCounters,
)
from orders.models import (
    DealStatus,
    FlashDeal,
    FlashDealBuy,
    Order,
    OrderStatus,
    Product,
    ProductKind,
    Segment,
    SegmentProduct,
    utcnow,
)
from orders.read_once import ReadOnce
from orders.ordering import IdempotencyMismatch, OrderDesk, OrderRequest, Placed, committee_codes, order_public

MIN_SECONDS = 10
MAX_SECONDS = 20 * 60
MAX_COUNTDOWN = 10 * 60
MAX_PRICE = 2**53 - 1  # exact in the live state's Lua numbers
MAX_CLIENT_KEY = 64  # a client's idempotency key; the desk's key is `deal-<id>-<key>` (100 at most)
RELEASED = (OrderStatus.cancelled, OrderStatus.expired)


class NotInLineup(Invalid):
    code = "not_in_lineup"


class DealUnitsAboveStock(Invalid):
    code = "deal_units_above_stock"


class DealRunning(Conflict):
    code = "deal_running"


class DealNotOpen(Conflict):
    code = "deal_not_open"


class DealEnded(Conflict):
    code = "deal_ended"


class DealSoldOut(SoldOut):
    code = "deal_sold_out"


class DealLimit(Conflict):
    """The buy would take the buyer past the deal's per-buyer limit."""

    code = "deal_limit"


@dataclass(frozen=True)
class DealTerms:
    product_id: int
    price: int  # minor units of the product's currency
    units: int
    per_buyer_limit: int
    seconds: int  # how long it sells, once open
    countdown: int = 0  # seconds before it opens

    def check(self) -> None:
        if not 0 <= self.price <= MAX_PRICE:
            raise Invalid("the deal price must be 0 or more (minor units)", field="price")
        if self.units < 1:
            raise Invalid("offer at least one unit", field="units")
        if not 1 <= self.per_buyer_limit <= self.units:
            raise Invalid("the per-buyer limit is 1 to the units offered", field="per_buyer_limit")
        if not MIN_SECONDS <= self.seconds <= MAX_SECONDS:
            raise Invalid(f"a deal lasts {MIN_SECONDS} s to {MAX_SECONDS // 60} min", field="seconds")
        if not 0 <= self.countdown <= MAX_COUNTDOWN:
            raise Invalid(f"the countdown is 0 to {MAX_COUNTDOWN} s", field="countdown")


@dataclass(frozen=True)
class Bought:
    placed: Placed
    left: int  # units of the deal left after this buy
    deal: dict[str, Any]


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def deal_public(deal: FlashDeal, left: int | None, product_name: str = "") -> dict[str, Any]:
    """`deal_state` as every viewer sees it."""
    return {
        "id": deal.id,
        "product_id": deal.product_id,
        "product_name": product_name,
        "price": deal.price,
        "currency": deal.currency,
        "units": deal.units,
        "left": deal.units if left is None else max(0, left),
        "per_buyer_limit": deal.per_buyer_limit,
        "opens_at": deal.opens_at.isoformat(),
        "ends_at": deal.ends_at.isoformat(),
        "status": deal.status.value,
        "end_reason": deal.end_reason,
    }


async def in_lineup(session, show_id: int, product_id: int) -> bool:
    found = await session.scalar(
        select(SegmentProduct.product_id)
        .join(Segment, Segment.id == SegmentProduct.segment_id)
        .where(Segment.show_id == show_id, SegmentProduct.product_id == product_id)
        .limit(1))
    return found is not None


async def lineup_product(session, show_id: int, product_id: int, *, made_into: str) -> Product:
    """The retail product of this show's line-up that a deal, an auction lot or a prize is
    made of; ``made_into`` ends the refusal of industrial goods ("sold in a deal")."""
    product = await session.get(Product, product_id)
    if product is None:
        raise Invalid(f"no product {product_id}", field="product_id")
    if product.kind is not ProductKind.retail:
        raise Invalid(f"industrial goods and packages are quoted, not {made_into}", field="product_id")
    if not await in_lineup(session, show_id, product.id):
        raise NotInLineup(f"product {product.id} is not in this show's line-up", field="product_id")
    return product


class FlashDeals:
    """Starting, buying and closing deals. Deals' terms never change once started, so
    they are cached per process; only their live state is shared."""

    def __init__(self, db: Database, counters: LiveCounters) -> None:
        self.db = db
        self.counters = counters
        self._deals: ReadOnce[int, tuple[FlashDeal, str]] = ReadOnce(
            self._read, lambda kept: kept[0].status is DealStatus.open)

    async def start(self, show_id: int, host_id: int, terms: DealTerms, now: datetime | None = None
                    ) -> dict[str, Any]:
        terms.check()
        now = now or utcnow()
        async with self.db.transaction() as session:
            product = await lineup_product(session, show_id, terms.product_id, made_into="sold in a deal")
            if terms.units > product.stock:
                raise DealUnitsAboveStock(f"only {product.stock} in stock", field="units", stock=product.stock)
            running = await session.scalar(select(FlashDeal.id).where(
                FlashDeal.show_id == show_id, FlashDeal.status == DealStatus.open, FlashDeal.ends_at > now).limit(1))
            if running is not None:
                raise DealRunning("a deal is already running in this show; wait for it to end")
            opens = now + timedelta(seconds=terms.countdown)
            deal = FlashDeal(show_id=show_id, product_id=product.id, host_id=host_id, price=terms.price,
                             currency=product.currency, units=terms.units, per_buyer_limit=terms.per_buyer_limit,
                             opens_at=opens, ends_at=opens + timedelta(seconds=terms.seconds),
                             status=DealStatus.open, created_at=now)
            session.add(deal)
            await session.flush()
            name = product.name
        self._deals.keep(deal.id, (deal, name))
        await self.counters.deal_open(deal.id, deal.units, deal.per_buyer_limit, _ms(deal.opens_at),
                                      _ms(deal.ends_at))
        return deal_public(deal, deal.units, name)

    async def get(self, deal_id: int) -> tuple[FlashDeal, str]:
        return await self._deals.get(deal_id)

    async def _read(self, deal_id: int) -> tuple[FlashDeal, str]:
        async with self.db.session() as session:
            deal = await session.get(FlashDeal, deal_id)
            if deal is None:
                raise NotFound(f"no deal {deal_id}")
            name = await session.scalar(select(Product.name).where(Product.id == deal.product_id)) or ""
        return deal, name

    async def state(self, deal_id: int) -> dict[str, Any]:
        deal, name = await self.get(deal_id)
        return deal_public(deal, await self.counters.deal_left(deal_id), name)

    async def buy(self, desk: OrderDesk, deal_id: int, buyer_id: int, quantity: int, *,
                  show_id: int | None = None, key: str | None = None) -> Bought:
        """A pending order at the deal price, or a refusal that took nothing. With the
        client's `key`, a repeat returns the order the first made (`placed.created` False).

        Raises DealNotOpen, DealEnded, DealSoldOut, DealLimit, NotFound, or what the
        order desk refuses (SoldOut, Invalid, IdempotencyMismatch)."""
        if quantity < 1:
            raise Invalid("quantity must be at least 1", field="quantity")
        if key is not None and not (1 <= len(key) <= MAX_CLIENT_KEY and key.isascii() and key.isprintable()
                                    and " " not in key):
            raise Invalid(f"an idempotency key is 1 to {MAX_CLIENT_KEY} printable ASCII characters, no spaces",
                          field="idempotency_key")
        deal, name = await self.get(deal_id)
        if show_id is not None and deal.show_id != show_id:
            raise NotFound(f"no deal {deal_id} in this show")
        request = OrderRequest(
            buyer_id=buyer_id, idempotency_key=f"deal-{deal_id}-{key or uuid.uuid4().hex}",
            product_id=deal.product_id, quantity=quantity, show_id=deal.show_id, unit_price=deal.price)
        if key is not None:
            stored = await self._stored(request)
            if stored is not None:  # a retry: nothing taken, the first attempt's order
                left = await self.counters.deal_left(deal_id)
                return Bought(stored, left if left is not None else 0, deal_public(deal, left, name))
        take = await self.counters.deal_take(deal_id, buyer_id, quantity)
        if take.verdict != OK:
            raise _refusal(take.verdict, deal, take.left, take.bought)
        try:
            placed = await desk.place(request)
        except BaseException:
            await self.counters.deal_give_back(deal_id, buyer_id, quantity)
            raise
        if not placed.created:  # its original, running beside it, made the order: this take was extra
            left = await self.counters.deal_give_back(deal_id, buyer_id, quantity)
            return Bought(placed, left, deal_public(deal, left, name))
        async with self.db.transaction() as session:
            session.add(FlashDealBuy(deal_id=deal_id, buyer_id=buyer_id, quantity=quantity,
                                     order_id=placed.order["id"], at=utcnow()))
        return Bought(placed, take.left, deal_public(deal, take.left, name))

    async def _stored(self, request: OrderRequest) -> Placed | None:
        """The order an earlier buy with this key made (as the desk would replay it)."""
        async with self.db.session() as session:
            order = await session.scalar(select(Order).where(
                Order.buyer_id == request.buyer_id, Order.idempotency_key == request.idempotency_key))
            if order is None:
                return None
            if order.request_hash != request.fingerprint():
                raise IdempotencyMismatch("this idempotency key was used for a different buy",
                                          field="idempotency_key")
            codes = await committee_codes(session, {order.committee_id})
        return Placed(order_public(order, codes.get(order.committee_id)), None, False)  # type: ignore[arg-type]

    async def give_back_released(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Give the units and the buyer's count of each buy whose order was cancelled or
        expired back to its running deal, once (the row is claimed first). The states of
        the deals that changed."""
        now = now or utcnow()
        async with self.db.transaction() as session:
            rows = (await session.execute(
                select(FlashDealBuy.id, FlashDealBuy.deal_id, FlashDealBuy.buyer_id, FlashDealBuy.quantity)
                .join(Order, Order.id == FlashDealBuy.order_id)
                .join(FlashDeal, FlashDeal.id == FlashDealBuy.deal_id)
                .where(FlashDeal.status == DealStatus.open, FlashDealBuy.returned_at.is_(None),
                       Order.status.in_(RELEASED)))).all()
            if not rows:
                return []
            claimed = set(await session.scalars(
                update(FlashDealBuy)
                .where(FlashDealBuy.id.in_([r.id for r in rows]), FlashDealBuy.returned_at.is_(None))
                .values(returned_at=now).returning(FlashDealBuy.id)
                .execution_options(synchronize_session=False)))
        # After the commit: a crash here loses a give-back (the buyer may buy less),
        # never gives one twice (which could let a buyer past the limit).
        changed: set[int] = set()
        for row in rows:
            if row.id in claimed:
                await self.counters.deal_give_back(row.deal_id, row.buyer_id, row.quantity)
                changed.add(row.deal_id)
        states = []
        for deal_id in sorted(changed):
            left = await self.counters.deal_left(deal_id)
            if left is not None:  # its live state is gone: nothing to tell
                deal, name = await self.get(deal_id)
                states.append(deal_public(deal, left, name))
        return states

    async def close(self, deal_id: int, *, force: bool = False, now: datetime | None = None
                    ) -> dict[str, Any] | None:
        """End the deal if its time is up or it is sold out (or `force`: the host ends
        it). The final `deal_state` to the caller that ended it, None to everyone else."""
        closing = await self.counters.deal_close(deal_id, force)
        if closing.verdict not in ("closed", "already", UNKNOWN):
            return None
        deal, name = await self.get(deal_id)
        now = now or utcnow()
        if closing.verdict == UNKNOWN and not force and deal.ends_at > now:
            return None  # its live state is gone (a restarted single process): it ends at its time
        reason = "sold_out" if closing.left <= 0 and closing.verdict != UNKNOWN else (
            "ended_by_host" if force else "time")
        async with self.db.transaction() as session:
            done = await session.execute(
                update(FlashDeal).where(FlashDeal.id == deal_id, FlashDeal.status == DealStatus.open)
                .values(status=DealStatus.ended, end_reason=reason, ended_at=now))
            if done.rowcount != 1:
                return None  # another node (or an earlier call) ended it
            deal = await session.get(FlashDeal, deal_id, populate_existing=True)
        self._deals.keep(deal_id, (deal, name))
        return deal_public(deal, closing.left, name)

    async def due(self, now: datetime | None = None) -> list[int]:
        """Open deals whose time is up (for the sweeper that ends deals a node lost track of)."""
        now = now or utcnow()
        async with self.db.session() as session:
            return list(await session.scalars(select(FlashDeal.id).where(
                FlashDeal.status == DealStatus.open, FlashDeal.ends_at <= now)))

    async def running(self, show_id: int) -> list[dict[str, Any]]:
        """The show's open deals with their units left (a joining viewer's widget)."""
        async with self.db.session() as session:
            ids = list(await session.scalars(select(FlashDeal.id).where(
                FlashDeal.show_id == show_id, FlashDeal.status == DealStatus.open)))
        return [await self.state(i) for i in ids]


def _refusal(verdict: str, deal: FlashDeal, left: int, bought: int) -> Exception:
    if verdict == NOT_OPEN:
        return DealNotOpen("the deal has not opened yet", opens_at=deal.opens_at.isoformat())
    if verdict in (ENDED, UNKNOWN):
        return DealEnded("the deal has ended")
    if verdict == SOLD_OUT:
        return DealSoldOut("the deal is sold out", stock=0)
    if verdict == OVER_LIMIT:
        return DealLimit(f"at most {deal.per_buyer_limit} per buyer in this deal; you have {bought}",
                         field="quantity", limit=deal.per_buyer_limit, bought=bought)
    if verdict == INSUFFICIENT:
        return DealSoldOut(f"only {left} left in the deal", field="quantity", stock=left)
    return Invalid(verdict)
