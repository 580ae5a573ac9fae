"""Restocking while a flash sale runs: the admin's relative stock change and the order
desk's batched gate share the product row, so no unit is lost or sold twice, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random

from tests.orders.conftest import GREEN_TEA
from tests.orders.test_concurrency import WHO, check_books, fire, ordered_quantity


async def test_restocks_during_a_burst_of_orders_keep_the_books_balanced(any_shop):
    shop = any_shop
    await shop.set_stock(GREEN_TEA, 20)
    clients = [(shop.client, await shop.token(who)) for who in WHO]
    admin = await shop.headers("admin")
    rng = random.Random(11)
    requests = [(rng.randint(1, 3), f"restock-burst-{i}") for i in range(240)]

    async def restock(units: int) -> int:
        response = await shop.client.patch(f"/api/admin/products/{GREEN_TEA}", json={"restock": units}, headers=admin)
        assert response.status == 200, await response.text()
        return units

    async def restocks() -> int:
        received = 0
        for units in (15, 10, 25, 5):
            await asyncio.sleep(0)  # interleave with the orders rather than run first
            received += await restock(units)
        return received

    results, received = await asyncio.gather(fire(clients, requests), restocks())

    # Units in = units sold + units left, whatever order the restocks and batches ran in.
    check_books(results, 20 + received, await shop.stock(GREEN_TEA), await ordered_quantity(shop.db))


async def test_write_offs_during_a_burst_never_take_stock_below_zero(any_shop):
    shop = any_shop
    await shop.set_stock(GREEN_TEA, 30)
    clients = [(shop.client, await shop.token(who)) for who in WHO]
    admin = await shop.headers("admin")
    requests = [(1, f"write-off-{i}") for i in range(60)]

    async def write_off() -> int:
        response = await shop.client.patch(f"/api/admin/products/{GREEN_TEA}", json={"restock": -10}, headers=admin)
        assert response.status in (200, 409), await response.text()
        return 10 if response.status == 200 else 0

    results, written_off = await asyncio.gather(fire(clients, requests), write_off())

    left = await shop.stock(GREEN_TEA)
    assert left >= 0
    check_books(results, 30 - written_off, left, await ordered_quantity(shop.db))
