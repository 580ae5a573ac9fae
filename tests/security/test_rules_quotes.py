"""Issue 14, item 9: a host quoted their own request at a unit price of 0, accepted it
and paid — two $120,000 machines for $0, stock gone. Nobody answers their own quote
now, and a price of 0 or below half the list price needs an admin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.orders.conftest import MASK_LINE, Shop, open_shop

LIST_PRICE = 8_500_000  # the demo's Mask Production Line, USD cents


@pytest.fixture
async def shop(aiohttp_client, sqlite_url: str, tmp_path: Path) -> Shop:
    return await open_shop(aiohttp_client, sqlite_url, tmp_path)


async def asked(shop: Shop, who: str = "buyer", quantity: int = 2) -> int:
    response = await shop.post("/api/quotes", who, {"product_id": MASK_LINE, "quantity": quantity, "show_id": 1,
                                                    "destination_country": "KR", "incoterm": "EXW"})
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def answer(shop: Shop, quote_id: int, who: str, unit_price: int):
    return await shop.post(f"/api/quotes/{quote_id}/answer", who, {"unit_price": unit_price, "valid_days": 7})


async def test_a_host_cannot_answer_their_own_quote_request(shop):
    quote_id = await asked(shop, "host")  # the host of show 1 asks during their own show

    response = await answer(shop, quote_id, "host", 0)

    assert response.status == 403
    assert (await response.json())["error"] == "own_quote"
    accept = await shop.post(f"/api/quotes/{quote_id}/accept", "host")
    assert accept.status == 409  # still only requested: nothing to accept, no stock taken
    assert await shop.stock(MASK_LINE) == 3


async def test_an_admin_cannot_answer_their_own_quote_request_either(shop):
    quote_id = await asked(shop, "admin")
    response = await answer(shop, quote_id, "admin", LIST_PRICE)
    assert response.status == 403 and (await response.json())["error"] == "own_quote"


@pytest.mark.parametrize("unit_price", [0, 1, LIST_PRICE // 2 - 1], ids=["zero", "one-cent", "below-half"])
async def test_a_host_quoting_zero_or_far_below_list_needs_an_admin(shop, unit_price):
    quote_id = await asked(shop)

    response = await answer(shop, quote_id, "host", unit_price)

    assert response.status == 403
    body = await response.json()
    assert body["error"] == "price_needs_admin" and body["list_price"] == LIST_PRICE
    assert body["min_unit_price"] == LIST_PRICE // 2


async def test_a_host_may_quote_a_discount_down_to_half_of_list(shop):
    quote_id = await asked(shop)
    response = await answer(shop, quote_id, "host", LIST_PRICE // 2)
    assert response.status == 200, await response.text()


async def test_an_admin_may_quote_any_price_even_zero(shop):
    quote_id = await asked(shop)
    response = await answer(shop, quote_id, "admin", 0)
    assert response.status == 200, await response.text()
    assert (await response.json())["unit_price"] == 0


async def test_the_share_of_list_a_host_may_go_down_to_is_a_setting(aiohttp_client, sqlite_url, tmp_path):
    shop = await open_shop(aiohttp_client, sqlite_url, tmp_path, quote_min_price_share=0.9)
    quote_id = await asked(shop)
    assert (await answer(shop, quote_id, "host", LIST_PRICE * 8 // 10)).status == 403
    assert (await answer(shop, quote_id, "host", LIST_PRICE * 9 // 10)).status == 200
