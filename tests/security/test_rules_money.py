"""Issue 14, item 11: on PostgreSQL an order whose total passed 32 bits (a 2^31-1 price
× 2, or a quote of 200 × 19,500,000) gave 500, and in a burst of 80 orders with one such
order among them most of the legitimate orders failed too. Money is in 64-bit columns
now, an impossible total is refused with 422 for that request alone, and a batch never
fails its neighbours for one bad member."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text, update

from orders.models import Product
from orders.money import MAX_TOTAL
from tests.orders.conftest import GREEN_TEA, MASK_LINE, Shop, open_shop

INT32_MAX = 2**31 - 1
MONEY_COLUMNS = {("products", "price"), ("exhibition_products", "price"), ("orders", "unit_price"),
                 ("orders", "total"), ("quotes", "unit_price"), ("broker_credits", "revenue"),
                 ("broker_credits", "amount")}


@pytest.fixture
async def pg_shop(aiohttp_client, postgres_url: str, tmp_path: Path) -> Shop:
    return await open_shop(aiohttp_client, postgres_url, tmp_path, order_max_quantity=1_000_000)


async def price_and_stock(shop: Shop, product_id: int, price: int, stock: int) -> None:
    async with shop.db.transaction() as session:
        await session.execute(update(Product).where(Product.id == product_id).values(price=price, stock=stock))


async def burst(shop: Shop, quantities: list[int]) -> list:
    """One order per quantity, all at once, from the demo's four accounts in turn."""
    who = ("buyer", "member", "admin", "host")
    for name in who:
        await shop.token(name)  # sign in first, so the orders arrive together
    return await asyncio.gather(*(shop.order(who[i % 4], product_id=GREEN_TEA, quantity=q)
                                  for i, q in enumerate(quantities)))


async def test_money_columns_are_64_bit_on_postgresql(postgres_url):
    from orders.db import Database

    database = Database(postgres_url)
    async with database.session() as session:
        rows = await session.execute(text(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'"))
        types = {(t, c): kind for t, c, kind in rows.all()}
    await database.close()
    assert {column: types[column] for column in MONEY_COLUMNS} == {column: "bigint" for column in MONEY_COLUMNS}


async def test_a_burst_with_one_order_past_32_bits_fails_none_of_its_neighbours(pg_shop):
    await price_and_stock(pg_shop, GREEN_TEA, INT32_MAX, 1000)

    responses = await burst(pg_shop, [1] * 40 + [2] + [1] * 40)

    assert [r.status for r in responses] == [201] * 81, [await r.text() for r in responses if r.status != 201]
    huge = await responses[40].json()
    assert (huge["unit_price"], huge["total"]) == (INT32_MAX, 2 * INT32_MAX)
    assert await pg_shop.stock(GREEN_TEA) == 1000 - 82


async def test_an_impossible_total_is_422_for_that_order_alone(pg_shop):
    await price_and_stock(pg_shop, GREEN_TEA, INT32_MAX, 1_000_000)

    responses = await burst(pg_shop, [1] * 20 + [100_000] + [1] * 20)  # 2^31-1 × 100,000 > MAX_TOTAL

    assert responses[20].status == 422
    body = await responses[20].json()
    assert body["error"] == "total_too_large" and body["max_total"] == MAX_TOTAL
    assert [r.status for i, r in enumerate(responses) if i != 20] == [201] * 40
    assert await pg_shop.stock(GREEN_TEA) == 1_000_000 - 40


async def test_a_quote_past_32_bits_is_accepted_into_an_exact_order(pg_shop):
    # The figures: 200 × 19,500,000 = 3,900,000,000 minor units.
    await price_and_stock(pg_shop, MASK_LINE, 19_500_000, 500)
    asked = await pg_shop.post("/api/quotes", "buyer", {"product_id": MASK_LINE, "quantity": 200,
                                                         "destination_country": "KR", "incoterm": "EXW"})
    quote_id = (await asked.json())["id"]
    answered = await pg_shop.post(f"/api/quotes/{quote_id}/answer", "admin",
                                  {"unit_price": 19_500_000, "valid_days": 7})
    assert answered.status == 200, await answered.text()

    accepted = await pg_shop.post(f"/api/quotes/{quote_id}/accept", "buyer")

    assert accepted.status == 200, await accepted.text()
    assert (await accepted.json())["order"]["total"] == 3_900_000_000


async def test_a_quote_whose_total_is_impossible_is_422(pg_shop):
    await price_and_stock(pg_shop, MASK_LINE, INT32_MAX, 100_000)
    asked = await pg_shop.post("/api/quotes", "buyer", {"product_id": MASK_LINE, "quantity": 100_000,
                                                         "destination_country": "KR", "incoterm": "EXW"})
    quote_id = (await asked.json())["id"]

    answered = await pg_shop.post(f"/api/quotes/{quote_id}/answer", "admin",
                                  {"unit_price": INT32_MAX, "valid_days": 7})

    assert answered.status == 422
    assert (await answered.json())["error"] == "total_too_large"


async def test_an_order_the_database_refuses_fails_alone_in_its_batch(pg_shop):
    """Whatever the reason a database refuses one order's row (here a trigger standing in
    for an out-of-range value), the orders batched with it are stored."""
    async with pg_shop.db.transaction() as session:
        await session.execute(text("""
            CREATE FUNCTION refuse_seven() RETURNS trigger AS $$
            BEGIN
              IF NEW.quantity = 7 THEN RAISE EXCEPTION 'out of range' USING ERRCODE = '22003'; END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql"""))
        await session.execute(text(
            "CREATE TRIGGER refuse_seven BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION refuse_seven()"))
    await price_and_stock(pg_shop, GREEN_TEA, 1500, 1000)

    responses = await burst(pg_shop, [1] * 30 + [7] + [1] * 30)

    assert responses[30].status == 422
    assert (await responses[30].json())["error"] == "order_refused_by_database"
    assert [r.status for i, r in enumerate(responses) if i != 30] == [201] * 60
    assert await pg_shop.stock(GREEN_TEA) == 1000 - 60
