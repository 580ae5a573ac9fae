"""The order desk's stock gate, called as the HTTP handler calls it, on both databases.

The desk guesses how much stock a batch may count on before it takes the row lock;
these tests make the guess wrong on purpose (stock changed behind its back, a second
desk on the same database as a second process would have) and check the books stay
exact and no buyer is refused while stock is left."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import func, select, update

from orders.demo import load_demo
from orders.errors import NotFound, SoldOut
from orders.inventory import lock_stock_taking
from orders.models import Committee, Order, Product, Show, ShowViewer
from orders.ordering import OrderDesk, OrderRequest

TEA = 1
BUYERS = (1, 2, 3, 4)


@pytest.fixture
async def stocked(db):
    async with db.transaction() as session:
        await load_demo(session)
        # The buyers watched show 1: a sale is credited only to a show its buyer watched.
        session.add_all(ShowViewer(show_id=1, viewer_key=f"u{b}", user_id=b) for b in BUYERS)
    return db


async def set_stock(db, stock: int) -> None:
    async with db.transaction() as session:
        await session.execute(update(Product).where(Product.id == TEA).values(stock=stock))


async def books(db) -> tuple[int, int]:
    async with db.session() as session:
        stock = await session.scalar(select(Product.stock).where(Product.id == TEA))
        stored = await session.scalar(select(func.coalesce(func.sum(Order.quantity), 0))
                                      .where(Order.product_id == TEA))
    return stock, stored


async def burst(desks: list[OrderDesk], quantities: list[int], tag: str) -> list[int | None]:
    async def one(i: int, quantity: int) -> int | None:
        desk = desks[i % len(desks)]
        try:
            placed = await desk.place(OrderRequest(BUYERS[i % 4], f"{tag}-{i}", TEA, quantity))
            return placed.order["quantity"]
        except SoldOut:
            return None

    return await asyncio.gather(*(one(i, q) for i, q in enumerate(quantities)))


async def test_a_burst_of_five_hundred_sells_exactly_the_stock(stocked):
    desk = OrderDesk(stocked, max_batch=50, parallel=4)
    await set_stock(stocked, 37)
    rng = random.Random(1)
    sold = await burst([desk], [rng.randint(1, 4) for _ in range(500)], "b")
    stock, stored = await books(stocked)
    assert sum(q for q in sold if q) == stored == 37 - stock
    assert stock >= 0 and stock < 4
    await desk.close()


async def test_two_desks_on_one_database_sell_exactly_the_stock(stocked, database_url):
    from orders.db import Database

    other = Database(database_url)  # its own pool, as another process would have
    desks = [OrderDesk(stocked, max_batch=20, parallel=3), OrderDesk(other, max_batch=20, parallel=3)]
    await set_stock(stocked, 60)
    sold = await burst(desks, [1 + i % 3 for i in range(400)], "two")
    stock, stored = await books(stocked)
    assert sum(q for q in sold if q) == stored == 60 - stock == 60
    for desk in desks:
        await desk.close()
    await other.close()


async def test_stock_returned_behind_the_desks_back_is_sold_again(stocked):
    desk = OrderDesk(stocked)
    await set_stock(stocked, 1)
    assert (await burst([desk], [1, 1], "first")).count(None) == 1
    await set_stock(stocked, 2)  # e.g. another process expired an order
    assert await burst([desk], [1, 1], "again") == [1, 1]
    assert await books(stocked) == (0, 3)
    await desk.close()


async def test_stock_taken_behind_the_desks_back_is_not_sold_twice(stocked):
    desk = OrderDesk(stocked)
    await set_stock(stocked, 10)
    await burst([desk], [1], "learn")  # the desk now believes 9 are left
    await set_stock(stocked, 2)  # another process sold 7 meanwhile
    sold = await burst([desk], [1] * 6, "stale")
    assert sold.count(1) == 2 and sold.count(None) == 4
    assert await books(stocked) == (0, 3)
    await desk.close()


async def test_a_stale_sold_out_belief_never_refuses_a_buyer_while_stock_is_left(stocked):
    desk = OrderDesk(stocked)
    await set_stock(stocked, 3)
    # White-box: make the desk believe, as after a commit it made itself, that nothing
    # is left — the state it is in when another process returns stock right after.
    desk._known[TEA] = (desk._commits + 10**6, 0)
    assert await burst([desk], [2, 2, 1], "low") == [2, None, 1]
    assert await books(stocked) == (0, 3)
    await desk.close()


async def test_taking_more_than_is_left_takes_nothing_and_reports_the_stock(stocked):
    await set_stock(stocked, 2)
    async with stocked.transaction() as session:
        assert await lock_stock_taking(session, TEA, 3) == (2, 2)
    async with stocked.transaction() as session:
        assert await lock_stock_taking(session, TEA, 2) == (2, 0)
    assert (await books(stocked))[0] == 0


async def test_taking_stock_of_an_unknown_product_is_not_found(stocked):
    async with stocked.transaction() as session:
        with pytest.raises(NotFound):
            await lock_stock_taking(session, 10**6, 1)


async def test_an_order_is_stored_with_the_price_and_attribution_it_was_answered_with(stocked):
    async with stocked.transaction() as session:
        await session.execute(update(Show).where(Show.id == 1).values(current_segment_id=1))
    desk = OrderDesk(stocked)
    reply = (await desk.place(OrderRequest(BUYERS[0], "attributed", TEA, 2, show_id=1))).order
    async with stocked.session() as session:
        order = await session.get(Order, reply["id"])
        committee = await session.scalar(select(Committee.code).where(Committee.id == order.committee_id))
    assert (reply["show_id"], reply["segment_id"], reply["committee"]) == (1, 1, "food")
    assert (order.unit_price, order.total, order.show_id, order.segment_id, committee) == (
        reply["unit_price"], reply["total"], 1, 1, "food")
    assert (order.status.value, order.expires_at.isoformat()) == (reply["status"], reply["expires_at"])
    await desk.close()


async def test_a_sold_out_buyer_is_answered_while_another_transaction_holds_the_row(stocked):
    from orders.inventory import lock_stock

    desk = OrderDesk(stocked)
    await set_stock(stocked, 1)
    async with stocked.transaction() as session:
        # A sale in another process holds the product row, about to take the last unit.
        await lock_stock(session, TEA)
        await session.execute(update(Product).where(Product.id == TEA).values(stock=0))
        # Sold out as last committed: the loser hears it now, not after the lock is let go.
        with pytest.raises(SoldOut) as refused:
            await asyncio.wait_for(desk.place(OrderRequest(BUYERS[0], "loser", TEA, 2)), 10)
        assert refused.value.detail["stock"] == 1
    assert await books(stocked) == (0, 0)
    await desk.close()


async def test_a_retried_burst_gets_back_each_of_its_orders_even_after_the_stock_ran_out(stocked):
    async with stocked.transaction() as session:
        await session.execute(update(Show).where(Show.id == 1).values(current_segment_id=1))
    desk = OrderDesk(stocked)
    await set_stock(stocked, 12)
    requests = [OrderRequest(BUYERS[i % 4], f"retry-{i}", TEA, 1, show_id=1) for i in range(12)]
    first = await asyncio.gather(*(desk.place(r) for r in requests))
    assert (await books(stocked))[0] == 0
    # The client timed out and sends the whole burst again: one batch of replays.
    again = await asyncio.gather(*(desk.place(r) for r in requests))
    assert [p.order["id"] for p in again] == [p.order["id"] for p in first]
    assert all(not p.created and p.order["committee"] == "food" for p in again)
    assert await books(stocked) == (0, 12)
    await desk.close()
