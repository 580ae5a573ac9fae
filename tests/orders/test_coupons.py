"""Coupons (issue 17, item 3) on SQLite and PostgreSQL: a code or a claimed voucher
applied to a pending order is a discount line, the total drops (never below 0) and the
payment charges it; each refusal has its code and takes nothing; a use comes back when
the order is cancelled or expires; and on PostgreSQL a voucher with 100 uses is used
exactly 100 times by 150 concurrent applies.

Demo facts: green tea (product 1) costs 1500 USD at list price (1200 in show 1's
exhibition), weighs 150 g; Moscow ships for 1400 under DAP; show 1 is in exhibition 1
and has a food, a cosmetics and a medical segment.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from orders import coupons
from orders.db import Database
from orders.demo import load_demo
from orders.errors import DomainError
from orders.expiry import expire_due
from orders.models import Order, OrderStatus, Voucher, VoucherUse
from tests.orders.conftest import BUYER
from tests.orders.test_checkout_addresses import MOSCOW
from tests.orders.test_checkout_shipping import add_address, check_out

NOW = datetime.now(timezone.utc)


def terms(**change: Any) -> dict[str, Any]:
    body = {"kind": "percent", "percent_bp": 1000, "currency": "USD", "total_limit": 100,
            "starts_at": (NOW - timedelta(hours=1)).isoformat(), "ends_at": (NOW + timedelta(days=1)).isoformat()}
    body.update(change)
    return {k: v for k, v in body.items() if v is not None}


async def voucher(shop, who: str = "admin", **change: Any) -> dict[str, Any]:
    response = await shop.post("/api/vouchers", who, terms(**change))
    assert response.status == 201, await response.text()
    return await response.json()


async def apply(shop, order_id: int, code: str, who: str = "buyer"):
    return await shop.post(f"/api/orders/{order_id}/coupon", who, {"code": code})


async def uses(shop, voucher_id: int) -> int:
    async with shop.db.session() as session:
        return await session.scalar(select(Voucher.uses).where(Voucher.id == voucher_id))


async def total(shop, order_id: int) -> int:
    async with shop.db.session() as session:
        return await session.scalar(select(Order.total).where(Order.id == order_id))


# --- what a coupon does ---------------------------------------------------------------

async def test_a_percent_code_is_a_discount_line_and_the_total_drops(any_shop):
    shop = any_shop
    made = await voucher(shop, code="winter10")
    order = await shop.placed(quantity=2)  # 3000

    response = await apply(shop, order["id"], "WINTER10")

    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["discounts"] == {"coupon": {"amount": 300, "code": "WINTER10"}, "points": None}
    assert (body["items_total"], body["total"]) == (3000, 2700)
    assert await uses(shop, made["id"]) == 1
    sent = await shop.events.wait_for(lambda e: e[2] == "order" and e[3]["total"] == 2700)
    assert sent[1] == BUYER


async def test_checkout_keeps_the_discount_and_the_payment_charges_the_discounted_total(any_shop):
    shop = any_shop
    made = await voucher(shop, kind="amount", percent_bp=None, amount=500)
    order = await shop.placed(quantity=2)  # 3000
    assert (await apply(shop, order["id"], made["code"])).status == 200

    checked = await check_out(shop, order["id"], await add_address(shop, MOSCOW))
    paying = await shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "invoice"})

    assert (await checked.json())["total"] == 3000 + 1400 - 500
    assert paying.status == 200, await paying.text()
    assert ((await paying.json())["amount"], await total(shop, order["id"])) == (3900, 3900)


async def test_an_amount_above_the_goods_brings_the_total_to_zero_not_below(shop):
    made = await voucher(shop, kind="amount", percent_bp=None, amount=1_000_000)
    order = await shop.placed()

    body = await (await apply(shop, order["id"], made["code"])).json()

    assert (body["discounts"]["coupon"]["amount"], body["total"]) == (1500, 0)


async def test_a_coupon_cannot_change_once_payment_has_started(shop):
    made = await voucher(shop)
    order = await shop.placed()
    await shop.ship_to(order["id"])
    assert (await shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "invoice"})).status == 200

    response = await apply(shop, order["id"], made["code"])

    assert (response.status, (await response.json())["error"]) == (409, "payment_started")
    assert await uses(shop, made["id"]) == 0


# --- refusals: each with its code, nothing taken ------------------------------------

REFUSALS = [
    ("coupon_not_started", dict(starts_at=(NOW + timedelta(hours=1)).isoformat()), {}, 409),
    ("coupon_expired", dict(starts_at=(NOW - timedelta(days=2)).isoformat(),
                            ends_at=(NOW - timedelta(days=1)).isoformat()), {}, 409),
    ("coupon_min_spend", dict(min_spend=5000), {}, 422),
    ("coupon_currency", dict(currency="KRW"), {}, 422),
    ("coupon_not_applicable", dict(committee="cosmetics"), {}, 422),  # green tea is food
    ("coupon_not_applicable", dict(exhibition_id=1), {}, 422),  # an order outside the show
]


async def test_each_coupon_outside_its_rules_is_refused_with_its_code_and_takes_nothing(any_shop):
    """The table above, then the used-up and per-buyer limits; one shop per database (a
    shop per rule would cost a database each)."""
    shop = any_shop
    for code, change, order_body, status in REFUSALS:
        made = await voucher(shop, **change)
        order = await shop.placed(**order_body)
        response = await apply(shop, order["id"], made["code"])
        assert (response.status, (await response.json())["error"], code) == (status, code, code)
        assert (await uses(shop, made["id"]), await total(shop, order["id"])) == (0, 1500)
    once = await voucher(shop, total_limit=2, per_buyer_limit=1)
    first, second, third = await shop.placed(), await shop.placed(), await shop.placed("member")
    assert (await apply(shop, first["id"], once["code"])).status == 200
    over_limit = await (await apply(shop, second["id"], once["code"])).json()
    assert (over_limit["error"], over_limit["limit"], over_limit["used"]) == ("coupon_buyer_limit", 1, 1)
    assert (await apply(shop, third["id"], once["code"], "member")).status == 200
    fourth = await shop.placed("admin")
    assert (await (await apply(shop, fourth["id"], once["code"], "admin")).json())["error"] == "coupon_used_up"
    assert (await uses(shop, once["id"]), await total(shop, second["id"]), await total(shop, fourth["id"])) == (
        2, 1500, 1500)


async def test_a_voucher_for_another_show_is_refused_and_one_for_this_show_applies(shop):
    await shop.go_live()
    async with shop.db.transaction() as session:  # another show of the same host
        from orders.models import Show

        show = Show(title="Another", host_id=2, scheduled_at=NOW)
        session.add(show)
        await session.flush()
        other_show = show.id
    await voucher(shop, show_id=other_show, code="ELSEWHERE")
    mine = await voucher(shop, "host", show_id=1)
    order = await shop.placed(show_id=1)

    refused = await apply(shop, order["id"], "ELSEWHERE")
    applied = await apply(shop, order["id"], mine["code"])

    assert (refused.status, (await refused.json())["error"]) == (422, "coupon_not_applicable")
    assert applied.status == 200 and (await applied.json())["total"] == 1200 - 120


async def test_a_voucher_for_the_orders_committee_or_exhibition_applies(shop):
    await shop.go_live()
    food = await voucher(shop, committee="food")
    fair = await voucher(shop, exhibition_id=1)
    plain, in_show = await shop.placed(), await shop.placed(show_id=1)  # 1500; 1200 in the fair

    by_committee = await apply(shop, plain["id"], food["code"])
    by_exhibition = await apply(shop, in_show["id"], fair["code"])

    assert (await by_committee.json())["total"] == 1350
    assert (await by_exhibition.json())["total"] == 1080


async def test_an_unknown_code_is_refused(shop):
    order = await shop.placed()
    response = await apply(shop, order["id"], "NO-SUCH")
    assert (response.status, (await response.json())["error"]) == (422, "coupon_unknown")


async def test_a_second_coupon_on_one_order_is_refused(shop):
    one, two = await voucher(shop), await voucher(shop)
    order = await shop.placed()
    assert (await apply(shop, order["id"], one["code"])).status == 200
    response = await apply(shop, order["id"], two["code"])
    assert (response.status, (await response.json())["error"]) == (409, "coupon_already_applied")


# --- who makes vouchers -------------------------------------------------------------

async def test_a_host_makes_vouchers_for_their_own_show_only_and_a_buyer_none(shop):
    assert (await shop.post("/api/vouchers", "host", terms(show_id=1))).status == 201
    assert (await shop.post("/api/vouchers", "host", terms())).status == 403
    assert (await shop.post("/api/vouchers", "buyer", terms(show_id=1))).status == 403
    listed = await (await shop.get("/api/vouchers?show_id=1", "host")).json()
    assert [v["show_id"] for v in listed] == [1]


# --- uses given back ------------------------------------------------------------------

async def test_cancelling_the_order_gives_its_use_back(shop):
    made = await voucher(shop, total_limit=1)
    first, second = await shop.placed(), await shop.placed("member")
    assert (await apply(shop, first["id"], made["code"])).status == 200

    assert (await shop.post(f"/api/orders/{first['id']}/cancel", "buyer")).status == 200

    assert await uses(shop, made["id"]) == 0
    assert (await apply(shop, second["id"], made["code"], "member")).status == 200


async def test_an_expired_order_gives_its_use_back(shop):
    made = await voucher(shop, total_limit=1)
    order = await shop.placed()
    assert (await apply(shop, order["id"], made["code"])).status == 200
    later = datetime.now(timezone.utc) + timedelta(hours=2)

    expired = await expire_due(shop.db, later)

    assert [e.order["id"] for e in expired] == [order["id"]]
    assert await uses(shop, made["id"]) == 0
    async with shop.db.session() as session:
        released = await session.scalar(select(VoucherUse.released_at).where(VoucherUse.order_id == order["id"]))
    assert released is not None


# --- exact under concurrency (PostgreSQL, concurrent sessions) ---------------------

async def _pending_orders(db: Database, buyer_id: int, count: int) -> list[int]:
    now = datetime.now(timezone.utc)
    async with db.transaction() as session:
        rows = [Order(buyer_id=buyer_id, product_id=1, quantity=1, unit_price=1500, currency="USD", total=1500,
                      status=OrderStatus.pending, created_at=now, updated_at=now,
                      expires_at=now + timedelta(hours=1)) for _ in range(count)]
        session.add_all(rows)
        await session.flush()
        return [r.id for r in rows]


async def _voucher_row(db: Database, total_limit: int, per_buyer_limit: int) -> Voucher:
    from orders.models import User, VoucherKind

    async with db.transaction() as session:
        admin = await session.get(User, 1)
        return await coupons.create_voucher(session, admin, coupons.VoucherTerms(
            kind=VoucherKind.amount, amount=100, currency="USD", total_limit=total_limit,
            per_buyer_limit=per_buyer_limit, starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(days=1)),
            NOW)


async def _apply_all(db: Database, order_ids: list[int], code: str) -> list[str]:
    async def one(order_id: int) -> str:
        try:
            async with db.transaction() as session:
                await coupons.apply_coupon(session, order_id, BUYER, datetime.now(timezone.utc), code=code)
            return "ok"
        except DomainError as exc:
            return exc.code

    return await asyncio.gather(*(one(i) for i in order_ids))


@pytest.fixture
async def pg_shop_db(postgres_url: str):
    database = Database(postgres_url)
    async with database.transaction() as session:
        await load_demo(session)
    yield database
    await database.close()


async def test_150_concurrent_applies_of_a_100_use_voucher_use_it_exactly_100_times(pg_shop_db):
    db = pg_shop_db
    made = await _voucher_row(db, total_limit=100, per_buyer_limit=100)
    order_ids = await _pending_orders(db, BUYER, 150)

    results = await _apply_all(db, order_ids, made.code)

    assert (results.count("ok"), results.count("coupon_used_up")) == (100, 50)
    async with db.session() as session:
        assert await session.scalar(select(Voucher.uses).where(Voucher.id == made.id)) == 100
        assert await session.scalar(select(func.count(VoucherUse.id))) == 100
        assert await session.scalar(select(func.count(Order.id)).where(Order.total == 1400)) == 100


async def test_one_buyers_concurrent_applies_stay_within_their_limit(pg_shop_db):
    db = pg_shop_db
    made = await _voucher_row(db, total_limit=100, per_buyer_limit=2)
    order_ids = await _pending_orders(db, BUYER, 12)

    results = await _apply_all(db, order_ids, made.code)

    assert (results.count("ok"), results.count("coupon_buyer_limit")) == (2, 10)
    async with db.session() as session:
        assert await session.scalar(select(Voucher.uses).where(Voucher.id == made.id)) == 2
