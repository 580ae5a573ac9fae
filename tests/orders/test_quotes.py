"""B2B quotes: request, answer, accept into an order, decline, validity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from orders.models import Quote, utcnow
from tests.orders.conftest import GREEN_TEA, MASK_LINE, MEMBER, PACKAGE


def quote_body(**extra) -> dict:
    body = {"product_id": MASK_LINE, "quantity": 2, "destination_country": "ru", "incoterm": "CIF",
            "note": "Доставка в Новороссийск"}
    body.update(extra)
    return body


async def request_quote(shop, **extra) -> dict:
    response = await shop.post("/api/quotes", "buyer", quote_body(**extra))
    assert response.status == 201, await response.text()
    return await response.json()


async def answer(shop, quote_id: int, who: str = "host", unit_price: int = 8_000_000, valid_days: int = 14):
    return await shop.post(f"/api/quotes/{quote_id}/answer", who, {"unit_price": unit_price, "valid_days": valid_days})


async def test_buyer_requests_a_quote_with_the_orders_attribution(shop):
    await shop.go_live(segment_id=3)
    code = await shop.coview()
    quote = await request_quote(shop, coview=code, product_id=PACKAGE)
    assert quote["status"] == "requested"
    assert (quote["destination_country"], quote["incoterm"], quote["note"]) == ("RU", "CIF", "Доставка в Новороссийск")
    assert (quote["show_id"], quote["segment_id"], quote["broker_id"]) == (1, 3, MEMBER)


async def test_retail_products_are_ordered_not_quoted(shop):
    response = await shop.post("/api/quotes", "buyer", quote_body(product_id=GREEN_TEA))
    assert response.status == 422
    assert (await response.json())["error"] == "not_quotable"


@pytest.mark.parametrize("bad", [
    {"incoterm": "XYZ"}, {"destination_country": "RUS"}, {"quantity": 0}, {"quantity": 10**6},
    {"note": "x" * 2001}, {"product_id": 99999}, {"coview": "unknown-code"},
])
async def test_bad_quote_requests_are_422(shop, bad):
    response = await shop.post("/api/quotes", "buyer", quote_body(**bad))
    assert response.status == 422, await response.text()


async def test_host_answers_and_buyer_accepts_which_creates_a_pending_order_and_reserves_stock(shop):
    await shop.go_live(segment_id=3)
    code = await shop.coview()
    quote = await request_quote(shop, show_id=1, coview=code)
    answered = await (await answer(shop, quote["id"], unit_price=8_100_000)).json()
    assert (answered["status"], answered["unit_price"], answered["currency"], answered["total"]) == (
        "answered", 8_100_000, "USD", 16_200_000)
    assert ("user", 4, "quote", answered) in shop.events.sent

    response = await shop.post(f"/api/quotes/{quote['id']}/accept", "buyer")
    assert response.status == 200, await response.text()
    accepted = await response.json()
    order = accepted["order"]
    assert accepted["status"] == "accepted" and accepted["order_id"] == order["id"]
    assert (order["status"], order["unit_price"], order["total"], order["quote_id"]) == (
        "pending", 8_100_000, 16_200_000, quote["id"])
    assert (order["show_id"], order["segment_id"], order["committee"], order["broker_id"]) == (1, 3, "medical", MEMBER)
    assert await shop.stock(MASK_LINE) == 1


async def test_accepting_twice_is_409(shop):
    quote = await request_quote(shop)
    await answer(shop, quote["id"], who="admin")
    assert (await shop.post(f"/api/quotes/{quote['id']}/accept", "buyer")).status == 200
    response = await shop.post(f"/api/quotes/{quote['id']}/accept", "buyer")
    assert response.status == 409
    assert await shop.stock(MASK_LINE) == 1


async def test_an_unanswered_quote_cannot_be_accepted(shop):
    quote = await request_quote(shop)
    assert (await shop.post(f"/api/quotes/{quote['id']}/accept", "buyer")).status == 409


async def test_a_quote_past_its_validity_cannot_be_accepted(shop):
    quote = await request_quote(shop)
    await answer(shop, quote["id"], who="admin")
    async with shop.db.transaction() as session:
        await session.execute(update(Quote).where(Quote.id == quote["id"]).values(
            valid_until=utcnow() - timedelta(seconds=1)))
    response = await shop.post(f"/api/quotes/{quote['id']}/accept", "buyer")
    assert response.status == 409
    assert (await response.json())["error"] == "quote_expired"


async def test_accepting_more_than_the_stock_is_sold_out_and_keeps_the_quote_open(shop):
    quote = await request_quote(shop, quantity=4)  # the mask line has 3 in stock
    await answer(shop, quote["id"], who="admin")
    response = await shop.post(f"/api/quotes/{quote['id']}/accept", "buyer")
    assert response.status == 409 and (await response.json())["error"] == "sold_out"
    detail = await (await shop.get(f"/api/quotes/{quote['id']}", "buyer")).json()
    assert detail["status"] == "answered"


async def test_buyer_declines_and_a_declined_quote_cannot_be_answered(shop):
    quote = await request_quote(shop)
    declined = await shop.post(f"/api/quotes/{quote['id']}/decline", "buyer")
    assert (await declined.json())["status"] == "declined"
    assert (await answer(shop, quote["id"], who="admin")).status == 409


async def test_a_host_answers_only_quotes_asked_in_their_shows(shop):
    outside = await request_quote(shop)  # asked outside any show
    assert (await answer(shop, outside["id"], who="host")).status == 403
    assert (await answer(shop, outside["id"], who="buyer")).status == 403
    assert (await answer(shop, outside["id"], who="admin")).status == 200


async def test_quote_lists_buyer_sees_own_host_sees_their_shows(shop):
    in_show = await request_quote(shop, show_id=1)
    outside = await request_quote(shop)
    assert {q["id"] for q in await (await shop.get("/api/quotes", "buyer")).json()} == {in_show["id"], outside["id"]}
    assert [q["id"] for q in await (await shop.get("/api/quotes", "host")).json()] == [in_show["id"]]
    assert await (await shop.get("/api/quotes", "member")).json() == []
    assert (await shop.get(f"/api/quotes/{in_show['id']}", "member")).status == 404


@pytest.mark.parametrize("body", [{"unit_price": -1}, {"unit_price": 10, "valid_days": 0},
                                  {"unit_price": 10, "valid_days": 181}, {"unit_price": "10"}])
async def test_bad_answers_are_422(shop, body):
    quote = await request_quote(shop)
    assert (await shop.post(f"/api/quotes/{quote['id']}/answer", "admin", body)).status == 422
