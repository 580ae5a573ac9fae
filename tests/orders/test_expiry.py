"""Unpaid orders expire and give their stock back; paid ones never do."""

from __future__ import annotations

from datetime import timedelta

from orders.expiry import expire_due
from orders.models import utcnow
from tests.orders.conftest import BUYER, GREEN_TEA, YUJA_TEA, open_shop


async def test_unpaid_orders_expire_and_their_stock_returns(any_shop):
    shop = any_shop
    first = await shop.placed(product_id=GREEN_TEA, quantity=3, show_id=1)
    second = await shop.placed(product_id=YUJA_TEA, quantity=2)
    assert await shop.stock(GREEN_TEA) == 117
    expired = await expire_due(shop.db, utcnow() + timedelta(hours=1))
    assert {e.order["id"] for e in expired} == {first["id"], second["id"]}
    assert all(e.order["status"] == "expired" for e in expired)
    assert (await shop.stock(GREEN_TEA), await shop.stock(YUJA_TEA)) == (120, 80)


async def test_orders_not_yet_due_and_paid_orders_stay(any_shop):
    shop = any_shop
    paid = await shop.placed(quantity=4)
    await shop.post(f"/api/orders/{paid['id']}/confirm-payment", "admin")
    await shop.placed(quantity=1)
    assert await expire_due(shop.db, utcnow()) == []  # 30 minutes are not up
    later = await expire_due(shop.db, utcnow() + timedelta(hours=1))
    assert [e.order["quantity"] for e in later] == [1]
    assert await shop.stock(GREEN_TEA) == 116


async def test_an_order_expires_only_once(shop):
    await shop.placed(quantity=5)
    at = utcnow() + timedelta(hours=1)
    assert len(await expire_due(shop.db, at)) == 1
    assert await expire_due(shop.db, at) == []
    assert await shop.stock(GREEN_TEA) == 120


async def test_an_expired_order_can_no_longer_be_paid(shop):
    order = await shop.placed()
    await expire_due(shop.db, utcnow() + timedelta(hours=1))
    response = await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")
    assert response.status == 409
    assert (await response.json())["error"] == "illegal_transition"


async def test_the_sweeper_expires_orders_and_tells_the_show_room_and_the_buyer(aiohttp_client, sqlite_url, tmp_path):
    shop = await open_shop(aiohttp_client, sqlite_url, tmp_path, order_expiry=0, order_sweep_interval=0.05)
    order = await shop.placed(quantity=7, show_id=1)
    _, _, _, data = await shop.events.wait_for(
        lambda e: e[:3] == ("user", BUYER, "order") and e[3]["status"] == "expired"
    )
    assert data["id"] == order["id"]
    assert ("show", 1, "stock", {"product_id": GREEN_TEA, "stock": 120}) in shop.events.sent
    assert await shop.stock(GREEN_TEA) == 120
