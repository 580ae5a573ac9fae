"""Giveaways, at the domain: the committed seed and the draw anyone can re-check, one
entry each, the window, who may enter, one draw however many callers, and the winner's
zero-price order through the order desk (the stock taken once, no revenue) — on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from orders.db import Database
from orders.demo import load_demo
from orders.errors import Invalid
from orders.flash_deals import NotInLineup
from orders.giveaways import (
    AlreadyEntered,
    GiveawayEnded,
    GiveawayRunning,
    Giveaways,
    GiveawayTerms,
    HostCannotEnter,
    NotEligible,
    not_a_giveaway,
)
from orders.models import CoviewRoom, Giveaway, GiveawayEntry, Order, Product, Role, ShowViewer, User
from orders.ordering import OrderDesk, OrderRequest

SHOW, ADMIN, HOST, MEMBER, BUYER = 1, 1, 2, 3, 4
GREEN_TEA = 1  # in show 1's line-up, stock 120


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


async def viewers(db: Database, n: int) -> list[int]:
    """n more signed-up users who watch show 1."""
    async with db.transaction() as session:
        users = [User(email=f"gw{i}@example.com", password_hash="x", name=f"Viewer {i}", role=Role.buyer,
                      country="KR") for i in range(n)]
        session.add_all(users)
        await session.flush()
        session.add_all(ShowViewer(show_id=SHOW, viewer_key=f"u{u.id}", user_id=u.id) for u in users)
        return [u.id for u in users]


async def stock(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(Product.stock).where(Product.id == GREEN_TEA))


def later(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def recheck(seed: str, entrants: list[int]) -> tuple[str, str, int]:
    """The draw as docs/orders.md tells anyone to check it, written out independently:
    (seed hash, entry-list hash, winner)."""
    seed_bytes = bytes.fromhex(seed)
    listing = "\n".join(str(u) for u in sorted(entrants)).encode()
    entries_hash = hashlib.sha256(listing).hexdigest()
    index = int(hashlib.sha256(seed_bytes + bytes.fromhex(entries_hash)).hexdigest(), 16) % len(entrants)
    return hashlib.sha256(seed_bytes).hexdigest(), entries_hash, sorted(entrants)[index]


async def test_the_draw_is_rechecked_from_the_revealed_seed_and_the_entry_list_hash(shop_db, desk):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))
    people = await viewers(shop_db, 6)
    for user in people:
        await giveaways.enter(opened["id"], user)

    drawn = await giveaways.draw(desk, opened["id"], now=later(11))

    result = drawn.result
    seed_hash, entries_hash, winner = recheck(result["seed"], people)
    assert seed_hash == opened["seed_hash"] == result["seed_hash"]  # committed before the first entry
    assert entries_hash == result["entries_hash"] and result["entries"] == 6
    assert result["winner"]["id"] == winner == sorted(people)[result["winner_index"]]
    assert result["winner"]["name"].startswith("Viewer ")
    assert await giveaways.entrants(opened["id"]) == sorted(people)


async def test_the_seed_stays_secret_until_the_draw(shop_db):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))

    running = await giveaways.running(SHOW)

    assert "seed" not in opened and len(opened["seed_hash"]) == 64
    assert [("seed" in g, g["seed_hash"]) for g in running] == [(False, opened["seed_hash"])]
    with pytest.raises(Exception) as refused:
        await giveaways.entrants(opened["id"])
    assert refused.value.code == "conflict"


async def test_the_winner_gets_a_zero_price_pending_order_that_is_not_revenue(shop_db, desk):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))
    await giveaways.enter(opened["id"], BUYER)

    drawn = await giveaways.draw(desk, opened["id"], now=later(11))

    order = drawn.placed.order
    assert (order["status"], order["unit_price"], order["total"], order["quantity"]) == ("pending", 0, 0, 1)
    assert (order["product_id"], order["show_id"]) == (GREEN_TEA, SHOW)
    assert await stock(shop_db) == 119
    async with shop_db.session() as session:
        assert await session.scalar(select(Giveaway.order_id)) == order["id"]
        counted = await session.scalar(select(func.count(Order.id)).where(not_a_giveaway()))
    assert counted == 0  # reports leave the prize out


async def test_the_draw_happens_once_however_many_callers_and_the_stock_is_taken_once(shop_db, desk):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))
    for user in await viewers(shop_db, 3):
        await giveaways.enter(opened["id"], user)

    outcomes = await asyncio.gather(*(giveaways.draw(desk, opened["id"], now=later(11)) for _ in range(4)))

    assert sum(o is not None for o in outcomes) == 1
    async with shop_db.session() as session:
        assert await session.scalar(select(func.count(Order.id))) == 1
    assert await stock(shop_db) == 119
    # A drawer that died before the order: the sweeper's finish places the same one.
    placed, _ = await giveaways.finish(desk, opened["id"])
    assert placed.created is False and await stock(shop_db) == 119


async def test_entries_racing_the_draw_are_either_drawn_or_refused(shop_db, desk):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))
    people = await viewers(shop_db, 12)
    closes = datetime.fromisoformat(opened["closes_at"])
    just_before = closes - timedelta(milliseconds=1)

    async def enter(user: int) -> bool:
        try:
            await giveaways.enter(opened["id"], user, now=just_before)
            return True
        except GiveawayEnded:
            return False

    entered = await asyncio.gather(*(enter(u) for u in people[:6]), giveaways.draw(desk, opened["id"], now=closes),
                                   *(enter(u) for u in people[6:]))
    accepted = [u for u, ok in zip(people, entered[:6] + entered[7:]) if ok]

    result = await giveaways.result(opened["id"])
    async with shop_db.session() as session:
        stored = list(await session.scalars(select(GiveawayEntry.user_id)))
    assert sorted(stored) == sorted(accepted)
    if accepted:
        assert result["entries_hash"] == recheck(result["seed"], accepted)[1]
        assert result["entries"] == len(accepted)


async def test_entering_twice_is_refused_and_counted_once(shop_db):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))
    assert (await giveaways.enter(opened["id"], BUYER))["entries"] == 1

    with pytest.raises(AlreadyEntered) as refused:
        await giveaways.enter(opened["id"], BUYER)

    assert refused.value.code == "already_entered"
    assert [g["entries"] for g in await giveaways.running(SHOW)] == [1]


async def test_an_entry_after_the_window_is_refused(shop_db):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))

    with pytest.raises(GiveawayEnded) as refused:
        await giveaways.enter(opened["id"], BUYER, now=later(10.5))

    assert refused.value.code == "giveaway_ended"
    assert [g["entries"] for g in await giveaways.running(SHOW)] == [0]


async def test_the_host_cannot_enter_their_own_giveaway(shop_db):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))
    with pytest.raises(HostCannotEnter) as refused:
        await giveaways.enter(opened["id"], HOST)
    assert refused.value.code == "host_cannot_enter"


async def test_the_shows_host_cannot_enter_a_giveaway_an_admin_opened_in_their_show(shop_db):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, ADMIN, GiveawayTerms(product_id=GREEN_TEA, seconds=10))
    with pytest.raises(HostCannotEnter):
        await giveaways.enter(opened["id"], HOST)


async def test_only_buyers_of_the_show_may_enter_a_buyers_giveaway(shop_db, desk):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=60, only="buyers"))

    with pytest.raises(NotEligible) as refused:
        await giveaways.enter(opened["id"], BUYER)
    await desk.place(OrderRequest(buyer_id=BUYER, idempotency_key="a-purchase", product_id=2, quantity=1,
                                  show_id=SHOW))
    entered = await giveaways.enter(opened["id"], BUYER)

    assert refused.value.code == "not_eligible"
    assert entered["entries"] == 1


async def test_only_members_of_the_co_view_room_may_enter_a_co_view_giveaway(shop_db):
    now = datetime.now(timezone.utc)
    async with shop_db.transaction() as session:
        room = CoviewRoom(code="room-gw", show_id=SHOW, owner_id=MEMBER, created_at=now,
                          expires_at=now + timedelta(hours=1))
        session.add(room)
        await session.flush()
        room_id = room.id
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=60, only="coview",
                                                            coview="room-gw"))

    with pytest.raises(NotEligible):
        await giveaways.enter(opened["id"], BUYER, coview_id=None)
    assert (await giveaways.enter(opened["id"], BUYER, coview_id=room_id))["entries"] == 1


async def test_nobody_entered_nothing_is_drawn_and_no_order_is_made(shop_db, desk):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))

    drawn = await giveaways.draw(desk, opened["id"], now=later(11))

    assert (drawn.result["status"], drawn.result["winner"], drawn.placed) == ("no_entries", None, None)
    assert await stock(shop_db) == 120


async def test_a_draw_before_the_window_closes_does_nothing(shop_db, desk):
    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))
    assert await giveaways.draw(desk, opened["id"]) is None
    assert [g["status"] for g in await giveaways.running(SHOW)] == ["open"]


async def test_a_second_giveaway_while_one_runs_and_a_product_outside_the_line_up_are_refused(shop_db):
    giveaways = Giveaways(shop_db)
    with pytest.raises(NotInLineup):
        await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=3, seconds=10))
    await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))
    with pytest.raises(GiveawayRunning):
        await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))


@pytest.mark.parametrize("terms, field", [
    (dict(seconds=9), "seconds"), (dict(seconds=1801), "seconds"), (dict(only="friends"), "only"),
    (dict(only="coview"), "coview"), (dict(coview="abc"), "coview"),
])
def test_terms_outside_their_bounds_are_refused(terms, field):
    with pytest.raises(Invalid) as refused:
        GiveawayTerms(**{"product_id": GREEN_TEA, "seconds": 60, **terms}).check()
    assert refused.value.detail["field"] == field


async def test_a_paid_prize_order_is_not_a_sale_in_reports(shop_db, desk):
    from orders.lifecycle import move
    from orders.models import OrderStatus
    from orders.reports import is_sale

    giveaways = Giveaways(shop_db)
    opened = await giveaways.open(SHOW, HOST, GiveawayTerms(product_id=GREEN_TEA, seconds=10))
    await giveaways.enter(opened["id"], BUYER)
    drawn = await giveaways.draw(desk, opened["id"], now=later(11))
    sold = await desk.place(OrderRequest(buyer_id=MEMBER, idempotency_key="a-sale", product_id=2, quantity=1,
                                         show_id=SHOW))
    async with shop_db.transaction() as session:
        for order_id in (drawn.placed.order["id"], sold.order["id"]):
            await move(session, order_id, OrderStatus.paid, datetime.now(timezone.utc))

    async with shop_db.session() as session:
        sales = list(await session.scalars(select(Order.id).where(is_sale())))

    assert sales == [sold.order["id"]]
