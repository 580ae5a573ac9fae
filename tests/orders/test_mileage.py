"""Member mileage (issue 17, item 5): points earned on paid orders at the admin's rate
(the broker too), redeemed at checkout up to the programme's share, given back or
reversed when the order is undone, expiring after their period; one ledger row per
movement; on PostgreSQL concurrent redemptions never make a balance negative.

The migration's programme: USD, 30 % of an order's goods redeemable, 365 days.
Green tea (product 1, food) costs 1500 USD at list price, 1200 in show 1's exhibition.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from orders import mileage
from orders.db import Database
from orders.demo import load_demo
from orders.errors import DomainError
from orders.models import MileageAccount, MileageEntry, Order, OrderStatus
from tests.orders.conftest import BUYER, MEMBER


async def set_rate(shop, **body) -> None:
    response = await shop.client.put("/api/admin/mileage-rates", json=body, headers=await shop.headers("admin"))
    assert response.status == 200, await response.text()


async def paid(shop, who: str = "buyer", **body) -> dict:
    order = await shop.placed(who, **body)
    response = await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")
    assert response.status == 200, await response.text()
    return order


async def statement(shop, who: str = "buyer") -> dict:
    response = await shop.get("/api/me/mileage", who)
    assert response.status == 200, await response.text()
    return await response.json()


async def credit(db: Database, user_id: int, points: int, *, days: int = 365) -> None:
    """Points earned earlier (the ledger's own movement, as an earn would write it)."""
    at = datetime.now(timezone.utc)
    async with db.transaction() as session:
        await mileage._touch(session, [user_id], at)
        await mileage._entry(session, user_id, "earn", points, f"test:{user_id}:{points}:{at.timestamp()}", at,
                             expires_at=at + timedelta(days=days))


async def redeem(shop, order_id: int, points: int, who: str = "buyer"):
    return await shop.post(f"/api/orders/{order_id}/points", who, {"points": points})


# --- earning ----------------------------------------------------------------------------

async def test_a_paid_order_earns_the_buyer_points_at_its_committees_rate(any_shop):
    shop = any_shop
    await set_rate(shop, committee="food", rate_bp=500)

    order = await paid(shop, quantity=2)  # 3000

    mine = await statement(shop)
    assert (mine["balance"], mine["currency"]) == (150, "USD")
    assert [(e["kind"], e["points"], e["order_id"], e["balance_after"]) for e in mine["entries"]] == [
        ("earn", 150, order["id"], 150)]


async def test_the_broker_earns_on_orders_credited_to_them(shop):
    await set_rate(shop, committee="food", rate_bp=500, broker_rate_bp=100)
    await shop.go_live()
    code = await shop.coview()

    await paid(shop, quantity=2, coview=code)  # 1200 × 2 in the exhibition

    assert (await statement(shop, "member"))["balance"] == 24
    assert (await statement(shop))["balance"] == 120


async def test_an_exhibitions_rate_wins_over_the_committees(shop):
    await set_rate(shop, committee="food", rate_bp=500)
    await set_rate(shop, exhibition_id=1, rate_bp=1000)
    await shop.go_live()

    await paid(shop, show_id=1)  # 1200

    assert (await statement(shop))["balance"] == 120


# --- redeeming --------------------------------------------------------------------------

async def test_points_pay_part_of_an_order_and_the_ledger_has_the_redemption(any_shop):
    shop = any_shop
    await credit(shop.db, BUYER, 1000)
    order = await shop.placed()  # 1500: at most 450 in points

    response = await redeem(shop, order["id"], 450)

    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["discounts"]["points"], body["total"]) == (450, 1050)
    mine = await statement(shop)
    assert (mine["balance"], mine["entries"][0]["kind"], mine["entries"][0]["points"]) == (550, "redeem", -450)


async def test_redeeming_more_than_held_is_refused_and_takes_nothing(shop):
    await credit(shop.db, BUYER, 100)
    order = await shop.placed()

    response = await redeem(shop, order["id"], 101)

    body = await response.json()
    assert (response.status, body["error"], body["balance"]) == (409, "not_enough_points", 100)
    assert (await statement(shop))["balance"] == 100
    assert (await (await shop.get(f"/api/orders/{order['id']}", "buyer")).json())["total"] == 1500


async def test_redeeming_above_the_allowed_share_is_refused_and_takes_nothing(shop):
    await credit(shop.db, BUYER, 1000)
    order = await shop.placed()

    response = await redeem(shop, order["id"], 451)

    body = await response.json()
    assert (response.status, body["error"], body["max_points"]) == (422, "points_above_share", 450)
    assert (await statement(shop))["balance"] == 1000


async def test_points_of_another_currency_than_the_orders_are_refused(shop):
    await credit(shop.db, BUYER, 1000)
    program = {"currency": "KRW", "redeem_share_bp": 3000, "expiry_days": 365}
    assert (await shop.client.put("/api/admin/mileage", json=program, headers=await shop.headers("admin"))).status == 200
    order = await shop.placed()  # USD

    response = await redeem(shop, order["id"], 100)

    assert (response.status, (await response.json())["error"]) == (422, "points_currency")
    assert (await statement(shop))["balance"] == 1000


async def test_cancelling_an_order_gives_its_points_back(shop):
    await credit(shop.db, BUYER, 400)
    order = await shop.placed()
    assert (await redeem(shop, order["id"], 400)).status == 200

    assert (await shop.post(f"/api/orders/{order['id']}/cancel", "buyer")).status == 200

    mine = await statement(shop)
    assert mine["balance"] == 400
    assert [e["kind"] for e in mine["entries"]][:2] == ["reverse", "redeem"]


async def test_a_refund_reverses_the_points_earned_and_returns_the_points_redeemed(shop):
    await set_rate(shop, committee="food", rate_bp=1000)
    await credit(shop.db, BUYER, 300)
    order = await shop.placed()  # 1500
    assert (await redeem(shop, order["id"], 300)).status == 200
    assert (await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")).status == 200
    assert (await statement(shop))["balance"] == 120  # 10 % of 1500 - 300

    assert (await shop.post(f"/api/orders/{order['id']}/refund", "admin")).status == 200

    mine = await statement(shop)
    assert mine["balance"] == 300
    assert sorted(e["points"] for e in mine["entries"] if e["kind"] == "reverse") == [-120, 300]


# --- expiry -----------------------------------------------------------------------------

async def test_points_past_their_period_expire_with_a_ledger_row(shop):
    await credit(shop.db, BUYER, 200)
    async with shop.db.transaction() as session:
        await session.execute(update(MileageEntry).values(expires_at=datetime.now(timezone.utc) - timedelta(days=1)))

    mine = await statement(shop)

    assert mine["balance"] == 0
    assert [(e["kind"], e["points"]) for e in mine["entries"]] == [("expire", -200), ("earn", 200)]


# --- never negative, two checkouts at once (PostgreSQL) ---------------------------------

async def test_concurrent_redemptions_never_make_the_balance_negative(postgres_url):
    db = Database(postgres_url)
    try:
        async with db.transaction() as session:
            await load_demo(session)
        await credit(db, MEMBER, 1000)
        now = datetime.now(timezone.utc)
        async with db.transaction() as session:
            orders = [Order(buyer_id=MEMBER, product_id=1, quantity=1, unit_price=1500, currency="USD", total=1500,
                            status=OrderStatus.pending, created_at=now, updated_at=now,
                            expires_at=now + timedelta(hours=1)) for _ in range(8)]
            session.add_all(orders)
            await session.flush()
            ids = [o.id for o in orders]

        async def one(order_id: int) -> str:
            try:
                async with db.transaction() as session:
                    await mileage.redeem(session, order_id, MEMBER, 400, datetime.now(timezone.utc))
                return "ok"
            except DomainError as exc:
                return exc.code

        results = await asyncio.gather(*(one(i) for i in ids))

        assert (results.count("ok"), results.count("not_enough_points")) == (2, 6)
        async with db.session() as session:
            assert await session.scalar(select(MileageAccount.balance).where(MileageAccount.user_id == MEMBER)) == 200
            assert await session.scalar(select(Order.id).where(Order.total == 1100).limit(1)) is not None
    finally:
        await db.close()
