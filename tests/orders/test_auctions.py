"""Live auctions, at the domain: the price rule (proxy bidding), each refusal with its
own code and nothing changed, the clock (server time, extend-on-late-bid or sudden
death), the ledger, and exactly one winner with one pending order at the hammer price
— on SQLite and PostgreSQL, with the in-process state and with Redis."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from orders.auctions import (
    AlreadyLeading,
    AuctionEnded,
    AuctionTerms,
    Auctions,
    BidderMuted,
    BidTooLow,
    SellerCannotBid,
    check_steps,
    hammer_price,
)
from orders.db import Database
from orders.demo import load_demo
from orders.errors import DomainError, Invalid
from orders.live_counters import OK, MemoryCounters, RedisCounters, _Lot, judge
from orders.models import AuctionMode, Order, Product, Role, ShowViewer, User
from orders.ordering import OrderDesk

SHOW, ADMIN, HOST, MEMBER, BUYER = 1, 1, 2, 3, 4
GREEN_TEA = 1
STEPS = ((0, 100), (2000, 500))
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


def terms(**changes) -> AuctionTerms:
    base = dict(product_id=GREEN_TEA, start_price=1000, seconds=60, mode=AuctionMode.sudden_death, steps=STEPS)
    base.update(changes)
    return AuctionTerms(**base)


# --- the price rule, stated over maxima -----------------------------------------------

def test_a_single_bidder_wins_at_the_start_price():
    assert hammer_price(1000, STEPS, [(BUYER, 5000)]) == (BUYER, 1000)


def test_the_price_is_the_second_maximum_plus_one_step():
    assert hammer_price(1000, STEPS, [(BUYER, 5000), (MEMBER, 1500)]) == (BUYER, 1600)


def test_the_step_is_the_one_at_the_second_maximum():
    assert hammer_price(1000, STEPS, [(BUYER, 5000), (MEMBER, 2500)]) == (BUYER, 3000)


def test_the_price_is_capped_at_the_winners_maximum():
    assert hammer_price(1000, STEPS, [(BUYER, 1550), (MEMBER, 1500)]) == (BUYER, 1550)


def test_equal_maxima_go_to_the_earlier_bidder_at_that_maximum():
    assert hammer_price(1000, STEPS, [(MEMBER, 1800), (BUYER, 1800)]) == (MEMBER, 1800)


def test_a_bidders_highest_maximum_counts():
    assert hammer_price(1000, STEPS, [(BUYER, 1200), (MEMBER, 1400), (BUYER, 3000)]) == (BUYER, 1500)


@pytest.mark.parametrize("steps", [[], [[100, 10]], [[0, 0]], [[0, 10], [0, 20]], [[0, 10, 5]]])
def test_a_bad_step_table_is_refused(steps):
    with pytest.raises(Invalid):
        check_steps(steps)


def test_bid_by_bid_the_live_price_always_equals_the_rule_over_the_maxima_so_far():
    rng = random.Random(17)
    for _ in range(200):
        lot = _Lot(1000, list(STEPS), 0, 10**12, 0, seller=99, price=1000)
        accepted: list[tuple[int, int]] = []
        for _ in range(rng.randint(1, 25)):
            bidder = rng.randint(1, 6)
            amount = rng.choice([0, rng.randint(900, 6000)])
            verdict, m = judge(lot, bidder, f"b{bidder}", amount, now=1)
            if verdict == OK:
                accepted.append((bidder, m))
            assert (lot.leader, lot.price) == hammer_price(1000, STEPS, accepted)


# --- bids against the live state and the database ------------------------------------

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


async def stock(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(Product.stock).where(Product.id == GREEN_TEA))


async def test_proxy_bidding_holds_the_price_at_the_second_maximum_plus_a_step(shop_db):
    auctions = Auctions(shop_db, MemoryCounters())
    lot = await auctions.start(SHOW, HOST, terms())

    await auctions.bid(lot["id"], BUYER, "王芳", 3000, kind="max")
    state, _ = await auctions.bid(lot["id"], MEMBER, "Иван", None)  # one tap: the next step, 1100

    assert state["leader"] == {"id": BUYER, "name": "王芳"}
    assert (state["price"], state["next_price"], state["bids"]) == (1200, 1300, 2)
    assert "max" not in str(state).replace("max_", "")  # nobody's maximum is shown


async def test_a_bid_below_the_next_step_is_refused_and_recorded_with_its_reason(shop_db):
    auctions = Auctions(shop_db, MemoryCounters())
    lot = await auctions.start(SHOW, HOST, terms())
    await auctions.bid(lot["id"], BUYER, "b", None)

    with pytest.raises(BidTooLow) as refused:
        await auctions.bid(lot["id"], MEMBER, "m", 1050)

    assert refused.value.code == "bid_too_low" and refused.value.detail["next_price"] == 1100
    ledger = await auctions.bids_of(lot["id"])
    assert [(b.bidder_id, b.accepted, b.reason, b.amount) for b in ledger] == [
        (BUYER, True, None, 1000), (MEMBER, False, "bid_too_low", 1050)]
    assert (await auctions.state(lot["id"]))["price"] == 1000


async def test_the_seller_cannot_bid_on_their_own_lot(shop_db):
    auctions = Auctions(shop_db, MemoryCounters())
    lot = await auctions.start(SHOW, HOST, terms())
    with pytest.raises(SellerCannotBid):
        await auctions.bid(lot["id"], HOST, "host", None)
    assert (await auctions.state(lot["id"]))["leader"] is None


async def test_the_leader_raising_their_own_maximum_keeps_the_price_and_lower_is_refused(shop_db):
    auctions = Auctions(shop_db, MemoryCounters())
    lot = await auctions.start(SHOW, HOST, terms())
    await auctions.bid(lot["id"], BUYER, "b", 2000, kind="max")
    state, _ = await auctions.bid(lot["id"], BUYER, "b", 4000, kind="max")
    assert state["price"] == 1000
    with pytest.raises(AlreadyLeading):
        await auctions.bid(lot["id"], BUYER, "b", 3000, kind="max")


async def test_a_bid_after_the_end_is_refused_by_server_time(shop_db):
    clock = Clock(T0)
    auctions = Auctions(shop_db, MemoryCounters(clock))
    lot = await auctions.start(SHOW, HOST, terms(seconds=30), now=T0)
    clock.at = T0 + timedelta(seconds=30)
    with pytest.raises(AuctionEnded):
        await auctions.bid(lot["id"], BUYER, "b", None)


async def test_a_late_bid_resets_the_clock_to_n_seconds_in_extend_mode(shop_db):
    clock = Clock(T0)
    auctions = Auctions(shop_db, MemoryCounters(clock))
    lot = await auctions.start(SHOW, HOST, terms(seconds=30, mode=AuctionMode.extend, extend_seconds=10), now=T0)

    clock.at = T0 + timedelta(seconds=15)
    early, _ = await auctions.bid(lot["id"], BUYER, "b", None)
    clock.at = T0 + timedelta(seconds=25)
    late, _ = await auctions.bid(lot["id"], MEMBER, "m", None)

    assert early["ends_ms"] == int((T0 + timedelta(seconds=30)).timestamp() * 1000)
    assert late["ends_ms"] == int((T0 + timedelta(seconds=35)).timestamp() * 1000)


async def test_sudden_death_keeps_its_end_whatever_the_bids(shop_db):
    clock = Clock(T0)
    auctions = Auctions(shop_db, MemoryCounters(clock))
    lot = await auctions.start(SHOW, HOST, terms(seconds=30), now=T0)
    clock.at = T0 + timedelta(seconds=29)
    state, _ = await auctions.bid(lot["id"], BUYER, "b", None)
    assert state["ends_ms"] == int((T0 + timedelta(seconds=30)).timestamp() * 1000)


@pytest.fixture(params=["memory", "redis"])
async def live(request) -> AsyncIterator:
    """(counters, mute(show, user)) with the in-process state and with Redis."""
    if request.param == "memory":
        muted: set[str] = set()
        counters = MemoryCounters(muted=lambda key: key in muted)
        yield counters, muted.add
        return
    client = aioredis.from_url(request.getfixturevalue("redis_url"))
    await client.flushdb()

    def mute(key: str) -> None:
        asyncio.get_running_loop().create_task(client.set(key, b"1", ex=60))

    yield RedisCounters(client, prefix="t"), mute
    await client.aclose()


async def test_a_muted_bidder_is_refused_and_nothing_changes(shop_db, live):
    counters, mute = live
    auctions = Auctions(shop_db, counters)
    lot = await auctions.start(SHOW, HOST, terms())
    mute("mute:1:4")
    await asyncio.sleep(0)  # the Redis SET is on its way
    await counters.now_ms()

    with pytest.raises(BidderMuted) as refused:
        await auctions.bid(lot["id"], BUYER, "b", None, guard_key="mute:1:4")

    assert refused.value.code == "muted"
    assert (await auctions.state(lot["id"]))["bids"] == 0


async def test_closing_gives_one_winner_one_pending_order_at_the_hammer_price_and_takes_stock_once(
        shop_db, desk, live):
    counters, _ = live
    auctions = Auctions(shop_db, counters)
    lot = await auctions.start(SHOW, HOST, terms(seconds=10), now=datetime.now(timezone.utc) - timedelta(seconds=5))
    await auctions.bid(lot["id"], BUYER, "b", 2600, kind="max")
    await auctions.bid(lot["id"], MEMBER, "m", 1500, kind="max")
    await auctions.bid(lot["id"], ADMIN, "a", None)  # one tap at 1700, below BUYER's maximum
    before = await stock(shop_db)
    assert await auctions.close(desk, lot["id"]) is None  # not yet: 5 s left
    await counters_end_now(counters, lot["id"])

    outcomes = await asyncio.gather(*(Auctions(shop_db, counters).close(desk, lot["id"]) for _ in range(4)),
                                    auctions.close(desk, lot["id"]))

    closed = [o for o in outcomes if o is not None]
    assert len(closed) == 1
    order = closed[0].placed.order
    assert (order["status"], order["unit_price"], order["quantity"], order["show_id"]) == ("pending", 1800, 1, SHOW)
    assert closed[0].state["status"] == "sold" and closed[0].state["winner"]["id"] == BUYER
    async with shop_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
        assert await session.scalar(select(Order.buyer_id)) == BUYER
    assert await stock(shop_db) == before - 1


async def counters_end_now(counters, auction_id: int) -> None:
    """Move the lot's end to now: the test does not wait out a real clock."""
    if isinstance(counters, MemoryCounters):
        counters._lots[auction_id].ends_ms = await counters.now_ms()
    else:
        await counters._client.hset(counters._lot_key(auction_id), "ends", await counters.now_ms())


async def test_a_lot_without_bids_closes_unsold_without_an_order(shop_db, desk):
    clock = Clock(T0)
    auctions = Auctions(shop_db, MemoryCounters(clock))
    lot = await auctions.start(SHOW, HOST, terms(seconds=10), now=T0)
    clock.at = T0 + timedelta(seconds=10)

    closed = await auctions.close(desk, lot["id"], now=clock.at)

    assert closed.state["status"] == "unsold" and closed.placed is None
    async with shop_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0


async def test_concurrent_bids_replayed_from_the_ledger_give_the_live_outcome(shop_db, live):
    counters, _ = live
    auctions = Auctions(shop_db, counters)
    lot = await auctions.start(SHOW, HOST, terms(mode=AuctionMode.extend, extend_seconds=30))
    async with shop_db.transaction() as session:
        users = [User(email=f"bidder{i}@example.com", password_hash="x", name=f"Bidder {i}", role=Role.buyer,
                      country="KR") for i in range(30)]
        session.add_all(users)
    rng = random.Random(5)

    async def bidder(user: User) -> None:
        for _ in range(3):
            try:
                if rng.random() < 0.5:
                    await auctions.bid(lot["id"], user.id, user.name, None)
                else:
                    await auctions.bid(lot["id"], user.id, user.name, rng.randint(1000, 9000), kind="max")
            except DomainError:
                pass

    await asyncio.gather(*(bidder(u) for u in users))

    ledger = await auctions.bids_of(lot["id"])
    replay = _Lot(1000, list(STEPS), 0, 10**15, 0, seller=HOST, price=1000)
    for b in ledger:
        verdict, _ = judge(replay, b.bidder_id, "", b.amount or 0, now=1)
        assert (verdict == OK) == b.accepted, b.seq
    live_state = await auctions.state(lot["id"])
    assert len(ledger) == 90 and [b.seq for b in ledger] == list(range(1, 91))
    assert (replay.leader, replay.price) == (live_state["leader"]["id"], live_state["price"])
    accepted = [(b.bidder_id, b.amount) for b in ledger if b.accepted]
    assert hammer_price(1000, STEPS, accepted) == (replay.leader, replay.price)
