"""Buying in-stream over HTTP: prices, attribution, idempotency, refusals and events."""

from __future__ import annotations

import pytest

from tests.orders.conftest import BUYER, GREEN_TEA, MASK_LINE, MEMBER, PACKAGE, SNAIL


async def test_order_in_a_live_show_takes_exhibition_price_segment_committee_and_broker(shop):
    await shop.go_live(segment_id=1)
    code = await shop.coview()
    order = await shop.placed(product_id=GREEN_TEA, quantity=3, show_id=1, coview=code)
    assert order["status"] == "pending"
    assert (order["unit_price"], order["currency"], order["total"]) == (1200, "USD", 3600)
    assert (order["show_id"], order["segment_id"], order["committee"], order["broker_id"]) == (1, 1, "food", MEMBER)
    assert await shop.stock(GREEN_TEA) == 117


async def test_order_outside_any_show_pays_the_list_price_with_no_attribution(shop):
    order = await shop.placed(product_id=GREEN_TEA, quantity=2)
    assert (order["unit_price"], order["total"]) == (1500, 3000)
    assert (order["show_id"], order["segment_id"], order["committee"], order["broker_id"]) == (None, None, None, None)


async def test_coview_code_alone_attributes_the_order_to_its_show(shop):
    await shop.go_live(segment_id=2)
    code = await shop.coview()
    order = await shop.placed(product_id=SNAIL, coview=code)
    assert (order["show_id"], order["segment_id"], order["committee"]) == (1, 2, "cosmetics")
    assert order["broker_id"] == MEMBER


async def test_a_member_buying_in_their_own_room_is_not_their_own_broker(shop):
    code = await shop.coview(owner_id=MEMBER)
    order = await shop.placed("member", coview=code)
    assert order["broker_id"] is None and order["show_id"] == 1


async def test_accepted_order_tells_the_show_stock_and_sale_and_only_the_buyer_their_order(shop):
    await shop.go_live()
    order = await shop.placed(product_id=GREEN_TEA, quantity=2, show_id=1)
    assert ("show", 1, "stock", {"product_id": GREEN_TEA, "stock": 118}) in shop.events.sent
    assert ("show", 1, "sale", {"product_id": GREEN_TEA, "quantity": 2}) in shop.events.sent
    assert ("user", BUYER, "order", order) in shop.events.sent
    assert len(shop.events.sent) == 3


async def test_repeating_a_request_with_its_key_returns_the_same_order_and_reserves_once(shop):
    first = await shop.order(key="retry-1", product_id=GREEN_TEA, quantity=4, show_id=1)
    again = await shop.order(key="retry-1", product_id=GREEN_TEA, quantity=4, show_id=1)
    assert first.status == again.status == 201
    assert await first.json() == await again.json()
    assert again.headers["Idempotency-Replayed"] == "true"
    assert await shop.stock(GREEN_TEA) == 116
    assert len(shop.events.named("sale")) == 1


async def test_a_replay_reads_back_the_price_and_attribution_the_order_was_stored_with(shop):
    await shop.go_live(segment_id=1)
    body = {"product_id": GREEN_TEA, "quantity": 2, "show_id": 1, "coview": await shop.coview()}
    first = await (await shop.order(key="attr-1", **body)).json()
    again = await shop.order(key="attr-1", **body)
    assert again.headers["Idempotency-Replayed"] == "true" and await again.json() == first
    assert (first["unit_price"], first["segment_id"], first["committee"], first["broker_id"]) == (1200, 1, "food", MEMBER)


async def test_repeat_returns_the_order_even_after_the_product_sold_out(shop):
    await shop.set_stock(GREEN_TEA, 1)
    first = await (await shop.order(key="last-one")).json()
    again = await shop.order(key="last-one")
    assert again.status == 201 and (await again.json())["id"] == first["id"]


async def test_a_retry_after_the_coview_invitation_expired_still_returns_its_order(shop):
    from datetime import datetime, timezone

    from sqlalchemy import update

    from orders.models import CoviewRoom

    await shop.go_live(segment_id=1)
    code = await shop.coview()
    body = {"product_id": GREEN_TEA, "quantity": 1, "show_id": 1, "coview": code}
    first = await (await shop.order(key="before-expiry", **body)).json()
    async with shop.db.transaction() as session:
        await session.execute(update(CoviewRoom).where(CoviewRoom.code == code)
                              .values(expires_at=datetime.now(timezone.utc)))
    # A new order with the code is refused now; the retry of the accepted one is not.
    assert (await (await shop.order(key="after-expiry", **body)).json())["error"] == "invalid_coview"
    again = await shop.order(key="before-expiry", **body)
    assert again.status == 201 and again.headers["Idempotency-Replayed"] == "true"
    assert (await again.json())["id"] == first["id"]


async def test_same_key_with_a_different_body_is_422(shop):
    await shop.placed(key="k", quantity=1)
    response = await shop.order(key="k", quantity=2)
    assert response.status == 422
    assert (await response.json())["error"] == "idempotency_mismatch"
    assert await shop.stock(GREEN_TEA) == 119


async def test_keys_belong_to_their_buyer(shop):
    mine = await shop.placed("buyer", key="shared")
    theirs = await shop.placed("member", key="shared")
    assert mine["id"] != theirs["id"]


@pytest.mark.parametrize("key", [None, "", "has space", "x" * 101, "ключ"])
async def test_missing_or_malformed_idempotency_key_is_422(shop, key):
    headers = await shop.headers("buyer")
    if key is not None:
        headers["Idempotency-Key"] = key
    response = await shop.client.post("/api/orders", json={"product_id": GREEN_TEA, "quantity": 1}, headers=headers)
    assert response.status == 422
    assert (await response.json())["error"] == "idempotency_key_required"


@pytest.mark.parametrize("quantity", [0, -1, 101, 2**40])
async def test_quantity_zero_negative_or_over_the_cap_is_422(shop, quantity):
    response = await shop.order(quantity=quantity)
    assert response.status == 422
    assert (await response.json())["error"] in ("invalid_quantity", "invalid")
    assert await shop.stock(GREEN_TEA) == 120


async def test_quantity_below_the_minimum_order_quantity_is_422(shop):
    from sqlalchemy import update

    from orders.models import Product

    async with shop.db.transaction() as session:
        await session.execute(update(Product).where(Product.id == GREEN_TEA).values(moq=6))
    response = await shop.order(quantity=5)
    assert response.status == 422
    body = await response.json()
    assert body["error"] == "invalid_quantity" and "minimum order quantity is 6" in body["message"]
    assert (await shop.order(quantity=6)).status == 201


@pytest.mark.parametrize("product_id", [MASK_LINE, PACKAGE])
async def test_industrial_goods_and_packages_are_quoted_not_ordered(shop, product_id):
    response = await shop.order(product_id=product_id)
    assert response.status == 422
    assert (await response.json())["error"] == "quote_required"


@pytest.mark.parametrize("body", [
    {"product_id": "1", "quantity": 1},
    {"product_id": 1, "quantity": 1.5},
    {"product_id": 1, "quantity": True},
    {"product_id": 1},
    {"product_id": 1, "quantity": 1, "price": 1},
    {"product_id": 0, "quantity": 1},
    {"product_id": 1, "quantity": 1, "coview": ""},
])
async def test_malformed_bodies_are_422(shop, body):
    headers = {**await shop.headers("buyer"), "Idempotency-Key": "k"}
    response = await shop.client.post("/api/orders", json=body, headers=headers)
    assert response.status == 422, await response.text()
    assert (await response.json())["error"] == "invalid"


async def test_unknown_product_or_show_is_422(shop):
    unknown_product = await shop.order(product_id=99999)
    unknown_show = await shop.order(show_id=99999)
    assert unknown_product.status == unknown_show.status == 422
    assert (await unknown_show.json())["error"] == "unknown_show"


async def test_coview_code_unknown_expired_or_of_another_show_is_422(shop):
    from datetime import datetime, timezone

    from orders.models import Show

    async with shop.db.transaction() as session:
        other = Show(title="other", host_id=2, scheduled_at=datetime.now(timezone.utc))
        session.add(other)
        await session.flush()
        other_id = other.id
    expired = await shop.coview(expires_in=-1)
    elsewhere = await shop.coview(show_id=other_id)
    for code, show_id in (("no-such-code", None), (expired, None), (elsewhere, 1)):
        response = await shop.order(coview=code, show_id=show_id)
        assert response.status == 422, code
        assert (await response.json())["error"] == "invalid_coview"
    assert await shop.stock(GREEN_TEA) == 120


async def test_when_stock_runs_out_the_next_buyer_gets_409_sold_out(shop):
    await shop.set_stock(GREEN_TEA, 2)
    assert (await shop.order(quantity=2)).status == 201
    response = await shop.order(quantity=1)
    assert response.status == 409
    assert (await response.json())["error"] == "sold_out"
    assert await shop.stock(GREEN_TEA) == 0


async def test_asking_for_more_than_is_left_says_how_many_and_leaves_the_rest(shop):
    await shop.set_stock(GREEN_TEA, 3)
    response = await shop.order(quantity=5)
    assert response.status == 409
    body = await response.json()
    assert (body["error"], body["available"], body["message"]) == ("insufficient_stock", 3, "Only 3 left")
    assert await shop.stock(GREEN_TEA) == 3


async def test_anonymous_visitor_cannot_order(shop):
    response = await shop.client.post("/api/orders", json={"product_id": 1, "quantity": 1},
                                      headers={"Idempotency-Key": "k"})
    assert response.status == 401


async def test_buyer_lists_and_reads_only_their_own_orders(shop):
    mine = await shop.placed("buyer")
    theirs = await shop.placed("member")
    listed = await (await shop.get("/api/orders", "buyer")).json()
    assert [o["id"] for o in listed] == [mine["id"]]
    assert (await shop.get(f"/api/orders/{theirs['id']}", "buyer")).status == 404
    assert (await shop.get(f"/api/orders/{theirs['id']}", "admin")).status == 200
