"""Flash deals, at the domain: terms, the deal price on a normal pending order, the
countdown and the end, the per-buyer limit and the units offered — exact under
concurrency with the in-process state and with Redis, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select, update

from orders.db import Database
from orders.demo import load_demo
from orders.errors import Invalid
from orders.flash_deals import (
    DealEnded,
    DealLimit,
    DealNotOpen,
    DealSoldOut,
    DealTerms,
    DealUnitsAboveStock,
    FlashDeals,
    NotInLineup,
)
from orders.live_counters import MemoryCounters, RedisCounters
from orders.models import FlashDeal, FlashDealBuy, Order, OrderStatus, Product, Role, ShowViewer, User
from orders.ordering import OrderDesk, OrderRequest

SHOW, HOST, BUYER, MEMBER = 1, 2, 4, 3
GREEN_TEA = 1  # in show 1's line-up (segment 1), stock 120, USD, list price 1500
SNAIL = 5  # in the line-up too
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Clock:
    """The live state's clock, moved by the test (server time, never the client's)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


@pytest.fixture
async def shop_db(db: Database) -> Database:
    async with db.transaction() as session:
        await load_demo(session)
        session.add_all(ShowViewer(show_id=SHOW, viewer_key=f"u{u}", user_id=u) for u in (1, 2, 3, 4))
    return db


@pytest.fixture
async def desk(shop_db: Database) -> AsyncIterator[OrderDesk]:
    d = OrderDesk(shop_db)
    yield d
    await d.close()


def terms(**changes) -> DealTerms:
    base = dict(product_id=GREEN_TEA, price=700, units=10, per_buyer_limit=2, seconds=60)
    base.update(changes)
    return DealTerms(**base)


async def stock(db: Database, product_id: int = GREEN_TEA) -> int:
    async with db.session() as session:
        return await session.scalar(select(Product.stock).where(Product.id == product_id))


async def buyers(db: Database, n: int) -> list[int]:
    """n more signed-up buyers who watch show 1."""
    async with db.transaction() as session:
        users = [User(email=f"fd{i}@example.com", password_hash="x", name=f"Buyer {i}", role=Role.buyer,
                      country="KR") for i in range(n)]
        session.add_all(users)
        await session.flush()
        session.add_all(ShowViewer(show_id=SHOW, viewer_key=f"u{u.id}", user_id=u.id) for u in users)
        return [u.id for u in users]


async def test_a_deal_buy_is_a_pending_order_at_the_deal_price_through_the_stock_gate(shop_db, desk):
    deals = FlashDeals(shop_db, MemoryCounters())
    deal = await deals.start(SHOW, HOST, terms(price=700, units=10))

    bought = await deals.buy(desk, deal["id"], BUYER, 2)

    order = bought.placed.order
    assert (order["status"], order["unit_price"], order["total"], order["quantity"]) == ("pending", 700, 1400, 2)
    assert (order["show_id"], order["currency"]) == (SHOW, "USD")
    assert bought.left == 8 and bought.deal["left"] == 8
    assert await stock(shop_db) == 118
    async with shop_db.session() as session:
        row = await session.scalar(select(FlashDealBuy))
    assert (row.deal_id, row.buyer_id, row.quantity, row.order_id) == (deal["id"], BUYER, 2, order["id"])


async def test_units_above_the_stock_are_refused_and_no_deal_starts(shop_db):
    deals = FlashDeals(shop_db, MemoryCounters())

    with pytest.raises(DealUnitsAboveStock) as refused:
        await deals.start(SHOW, HOST, terms(units=121))

    assert refused.value.code == "deal_units_above_stock" and refused.value.detail["field"] == "units"
    async with shop_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(FlashDeal)) == 0


async def test_a_product_outside_the_shows_line_up_is_refused(shop_db):
    deals = FlashDeals(shop_db, MemoryCounters())
    with pytest.raises(NotInLineup):
        await deals.start(SHOW, HOST, terms(product_id=3))


@pytest.mark.parametrize("changes, field", [
    ({"seconds": 9}, "seconds"), ({"seconds": 1201}, "seconds"), ({"per_buyer_limit": 0}, "per_buyer_limit"),
    ({"per_buyer_limit": 11}, "per_buyer_limit"), ({"price": -1}, "price"), ({"countdown": -5}, "countdown"),
])
def test_terms_outside_their_bounds_are_refused(changes, field):
    with pytest.raises(Invalid) as refused:
        terms(**changes).check()  # what `start` checks first, before it reads or writes anything
    assert refused.value.detail["field"] == field


async def test_a_second_deal_while_one_runs_is_refused(shop_db):
    deals = FlashDeals(shop_db, MemoryCounters())
    await deals.start(SHOW, HOST, terms())
    with pytest.raises(Exception) as refused:
        await deals.start(SHOW, HOST, terms(product_id=SNAIL))
    assert refused.value.code == "deal_running"


async def test_a_buy_during_the_countdown_is_refused_and_takes_nothing(shop_db, desk):
    clock = Clock(T0)
    deals = FlashDeals(shop_db, MemoryCounters(clock))
    deal = await deals.start(SHOW, HOST, terms(countdown=30), now=T0)

    clock.at = T0 + timedelta(seconds=29)
    with pytest.raises(DealNotOpen):
        await deals.buy(desk, deal["id"], BUYER, 1)
    clock.at = T0 + timedelta(seconds=30)
    assert (await deals.buy(desk, deal["id"], BUYER, 1)).left == 9
    assert await stock(shop_db) == 119


async def test_a_buy_after_the_end_is_refused_and_the_price_goes_back(shop_db, desk):
    clock = Clock(T0)
    deals = FlashDeals(shop_db, MemoryCounters(clock))
    deal = await deals.start(SHOW, HOST, terms(seconds=10), now=T0)

    clock.at = T0 + timedelta(seconds=10)
    with pytest.raises(DealEnded):
        await deals.buy(desk, deal["id"], BUYER, 1)
    ended = await deals.close(deal["id"], now=clock.at)
    normal = await desk.place(OrderRequest(
        buyer_id=BUYER, idempotency_key="after-the-deal", product_id=GREEN_TEA, quantity=1, show_id=SHOW))

    assert ended["status"] == "ended" and ended["end_reason"] == "time"
    assert normal.order["unit_price"] == 1200  # the exhibition price again
    assert await stock(shop_db) == 119


async def test_a_buy_above_the_per_buyer_limit_is_refused_and_takes_nothing(shop_db, desk):
    deals = FlashDeals(shop_db, MemoryCounters())
    deal = await deals.start(SHOW, HOST, terms(units=10, per_buyer_limit=2))
    await deals.buy(desk, deal["id"], BUYER, 1)

    with pytest.raises(DealLimit) as refused:
        await deals.buy(desk, deal["id"], BUYER, 2)

    assert (refused.value.code, refused.value.detail["limit"], refused.value.detail["bought"]) == ("deal_limit", 2, 1)
    assert (await deals.state(deal["id"]))["left"] == 9
    assert await stock(shop_db) == 119
    assert (await deals.buy(desk, deal["id"], BUYER, 1)).left == 8  # up to the limit is fine


async def test_a_buy_after_sold_out_is_refused_and_the_deal_ends_sold_out(shop_db, desk):
    deals = FlashDeals(shop_db, MemoryCounters())
    deal = await deals.start(SHOW, HOST, terms(units=2, per_buyer_limit=2))
    assert (await deals.buy(desk, deal["id"], BUYER, 2)).left == 0

    with pytest.raises(DealSoldOut) as refused:
        await deals.buy(desk, deal["id"], MEMBER, 1)
    ended = await deals.close(deal["id"])

    assert refused.value.code == "deal_sold_out"
    assert (ended["status"], ended["end_reason"], ended["left"]) == ("ended", "sold_out", 0)
    assert await deals.close(deal["id"]) is None  # once
    assert await stock(shop_db) == 118


async def test_an_order_the_stock_gate_refuses_gives_the_deal_units_back(shop_db, desk):
    deals = FlashDeals(shop_db, MemoryCounters())
    deal = await deals.start(SHOW, HOST, terms(units=5, per_buyer_limit=5))
    async with shop_db.transaction() as session:  # the product sold out outside the deal meanwhile
        await session.execute(update(Product).where(Product.id == GREEN_TEA).values(stock=0))

    with pytest.raises(Exception) as refused:
        await deals.buy(desk, deal["id"], BUYER, 3)

    assert refused.value.code == "sold_out"
    assert (await deals.state(deal["id"]))["left"] == 5


@pytest.fixture(params=["memory", "redis"])
async def counters(request) -> AsyncIterator:
    if request.param == "memory":
        yield MemoryCounters()
        return
    url = request.getfixturevalue("redis_url")
    client = aioredis.from_url(url)
    await client.flushdb()
    yield RedisCounters(client, prefix=f"t{id(client)}")
    await client.aclose()


async def test_concurrent_buyers_never_get_more_than_offered_nor_more_than_the_limit(shop_db, desk, counters):
    deals = FlashDeals(shop_db, counters)
    deal = await deals.start(SHOW, HOST, terms(units=20, per_buyer_limit=2))
    people = await buyers(shop_db, 25)

    async def attempt(buyer: int, quantity: int) -> int:
        try:
            return (await deals.buy(desk, deal["id"], buyer, quantity)).placed.order["quantity"]
        except (DealLimit, DealSoldOut):
            return 0

    results = await asyncio.gather(*(attempt(b, q) for b in people for q in (1, 2, 1)))

    async with shop_db.session() as session:
        per_buyer = dict((await session.execute(
            select(Order.buyer_id, func.sum(Order.quantity)).where(Order.unit_price == 700)
            .group_by(Order.buyer_id))).all())
        statuses = set(await session.scalars(select(Order.status)))
    assert sum(results) == 20 and sum(per_buyer.values()) == 20
    assert max(per_buyer.values()) <= 2
    assert statuses == {OrderStatus.pending}
    assert await stock(shop_db) == 100
    assert (await deals.state(deal["id"]))["left"] == 0


# --- given back, plain orders during a deal, retries (issue 17 leftovers) ----------------

async def test_a_cancelled_deal_order_gives_the_buyers_count_and_its_units_back_once(shop_db, desk):
    from orders.lifecycle import move

    deals = FlashDeals(shop_db, MemoryCounters())
    deal = await deals.start(SHOW, HOST, terms(units=10, per_buyer_limit=2))
    first = await deals.buy(desk, deal["id"], BUYER, 2)
    async with shop_db.transaction() as session:
        await move(session, first.placed.order["id"], OrderStatus.cancelled, datetime.now(timezone.utc))

    states = await deals.give_back_released()
    again = await deals.give_back_released()  # the next sweep, or another node's
    rebought = await deals.buy(desk, deal["id"], BUYER, 2)

    assert [s["left"] for s in states] == [10] and again == []
    assert rebought.left == 8 and rebought.placed.order["unit_price"] == 700


async def test_an_expired_deal_order_lets_its_buyer_buy_again_within_the_limit(shop_db, desk, counters):
    from orders.expiry import expire_due

    deals = FlashDeals(shop_db, counters)
    deal = await deals.start(SHOW, HOST, terms(units=10, per_buyer_limit=1))
    await deals.buy(desk, deal["id"], BUYER, 1)
    with pytest.raises(DealLimit):
        await deals.buy(desk, deal["id"], BUYER, 1)
    expired = await expire_due(shop_db, datetime.now(timezone.utc) + timedelta(hours=1))

    await deals.give_back_released()
    rebought = await deals.buy(desk, deal["id"], BUYER, 1)

    assert [e.order["status"] for e in expired] == ["expired"]
    assert rebought.placed.order["status"] == "pending" and rebought.left == 9


async def test_a_plain_order_of_the_deal_product_in_the_show_is_sent_to_the_deal(shop_db, desk):
    from orders.ordering import UseTheDeal

    deals = FlashDeals(shop_db, MemoryCounters())
    deal = await deals.start(SHOW, HOST, terms(price=700))

    with pytest.raises(UseTheDeal) as refused:
        await desk.place(OrderRequest(buyer_id=BUYER, idempotency_key="plain-in-show", product_id=GREEN_TEA,
                                      quantity=1, show_id=SHOW))
    elsewhere = await desk.place(OrderRequest(buyer_id=BUYER, idempotency_key="plain-catalog",
                                              product_id=GREEN_TEA, quantity=1))

    assert (refused.value.code, refused.value.detail["deal_id"]) == ("use_flash_deal", deal["id"])
    assert elsewhere.order["unit_price"] == 1500  # outside the show: the list price, as before
    assert await stock(shop_db) == 119


async def test_a_retried_buy_with_the_clients_key_returns_the_same_order_and_takes_nothing(shop_db, desk):
    deals = FlashDeals(shop_db, MemoryCounters())
    deal = await deals.start(SHOW, HOST, terms(units=10, per_buyer_limit=2))
    first = await deals.buy(desk, deal["id"], BUYER, 2, key="tap-1")

    retry = await deals.buy(desk, deal["id"], BUYER, 2, key="tap-1")

    assert retry.placed.order["id"] == first.placed.order["id"] and retry.placed.created is False
    assert retry.left == 8 and await stock(shop_db) == 118


async def test_simultaneous_retries_with_one_key_make_one_order(shop_db, desk, counters):
    deals = FlashDeals(shop_db, counters)
    deal = await deals.start(SHOW, HOST, terms(units=10, per_buyer_limit=3))

    results = await asyncio.gather(*(deals.buy(desk, deal["id"], BUYER, 1, key="tap-x") for _ in range(3)),
                                   return_exceptions=True)

    ids = {r.placed.order["id"] for r in results if not isinstance(r, BaseException)}
    assert len(ids) == 1 and all(not isinstance(r, BaseException) for r in results)
    assert await stock(shop_db) == 119
    assert (await deals.state(deal["id"]))["left"] == 9
