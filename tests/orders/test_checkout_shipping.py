"""Checkout and shipping abroad (issue 15, items 1, 3 and 4), on SQLite and PostgreSQL.

The demo's default USD table (orders/shipping.py, DEMO_ZONES): Korea 300 up to 2 kg;
Russia 1400 up to 500 g; North America 1500 up to 500 g with 8 % duties (DDP); Asia 900
up to 500 g, 4500 up to 10 kg; the rest of the world on quote. Green tea weighs 150 g
and costs 1500 (list price, no show); yuja tea 1200 g.
"""

from __future__ import annotations

import asyncio
from typing import Any

from orders.models import Order
from tests.orders.conftest import BUYER, GREEN_TEA, MEMBER, YUJA_TEA
from tests.orders.test_checkout_addresses import HANOI, MOSCOW, SEOUL

NEW_YORK = {"name": "Jane Doe", "line1": "350 Fifth Avenue", "city": "New York", "region": "NY",
            "postal_code": "10118", "country": "US", "phone": "+1 212 736 3100"}
BERLIN = {"name": "Max Muster", "line1": "Unter den Linden 1", "city": "Berlin", "postal_code": "10117",
          "country": "DE", "phone": "+49 30 2023 0"}


async def add_address(shop, fields: dict[str, Any], who: str = "buyer") -> int:
    response = await shop.post("/api/addresses", who, fields)
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def check_out(shop, order_id: int, address_id: int, who: str = "buyer"):
    return await shop.post(f"/api/orders/{order_id}/checkout", who, {"address_id": address_id})


async def order_row(shop, order_id: int) -> Order:
    async with shop.db.session() as session:
        return await session.get(Order, order_id)


async def patch(shop, path: str, body: dict[str, Any], who: str = "admin"):
    return await shop.client.patch(path, json=body, headers=await shop.headers(who))


async def put(shop, path: str, body: dict[str, Any], who: str = "admin"):
    return await shop.client.put(path, json=body, headers=await shop.headers(who))


# --- checkout ---------------------------------------------------------------------------

async def test_checkout_copies_the_address_and_adds_shipping_under_dap(any_shop):
    shop = any_shop
    order = await shop.placed(quantity=2)  # 300 g
    moscow = await add_address(shop, MOSCOW)

    response = await check_out(shop, order["id"], moscow)

    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["items"] == [{"product_id": GREEN_TEA, "name": "Jeju Organic Green Tea 100g", "quantity": 2,
                              "unit_price": 1500, "total": 3000}]
    assert (body["items_total"], body["shipping"], body["duties"], body["total"], body["currency"]) == (
        3000, 1400, None, 4400, "USD")
    assert body["incoterm"] == "DAP" and "paid by the buyer" in body["duties_note"]
    assert body["expires_at"] == order["expires_at"] and body["payable"] is True
    assert {"invoice", "sandbox"} <= set(body["payment_providers"])
    assert body["ship_to"]["city"] == "Москва" and body["ship_to"]["phone"] == "+74951234567"


async def test_a_later_edit_of_the_address_book_does_not_move_the_order(any_shop):
    shop = any_shop
    order = await shop.placed()
    seoul = await add_address(shop, SEOUL)
    assert (await check_out(shop, order["id"], seoul)).status == 200

    await put(shop, f"/api/addresses/{seoul}", {**SEOUL, "line1": "다른 주소 1"}, who="buyer")
    await shop.client.delete(f"/api/addresses/{seoul}", headers=await shop.headers("buyer"))

    mine = await (await shop.get(f"/api/orders/{order['id']}", "buyer")).json()
    assert mine["ship_to"]["line1"] == "세종대로 110" and mine["ship_to"]["name"] == "김민지"
    assert (mine["shipping_amount"], mine["total"], mine["items_total"]) == (300, 1800, 1500)


async def test_a_zone_with_a_duty_rate_is_ddp_and_duties_are_added(any_shop):
    shop = any_shop
    order = await shop.placed()
    body = await (await check_out(shop, order["id"], await add_address(shop, NEW_YORK))).json()
    # 8 % of 1500 = 120
    assert (body["incoterm"], body["shipping"], body["duties"], body["total"]) == ("DDP", 1500, 120, 3120)
    assert "included" in body["duties_note"]


async def test_checking_out_again_with_another_address_prices_it_again(any_shop):
    shop = any_shop
    order = await shop.placed()
    await check_out(shop, order["id"], await add_address(shop, NEW_YORK))
    body = await (await check_out(shop, order["id"], await add_address(shop, SEOUL))).json()
    assert (body["incoterm"], body["shipping"], body["duties"], body["total"]) == ("DAP", 300, None, 1800)


async def test_a_country_the_product_never_ships_to_is_refused_before_payment(any_shop):
    shop = any_shop
    assert (await patch(shop, f"/api/admin/products/{GREEN_TEA}/shipping", {"never_ships_to": ["RU"]})).status == 200
    order = await shop.placed()

    response = await check_out(shop, order["id"], await add_address(shop, MOSCOW))

    body = await response.json()
    assert response.status == 422
    assert (body["error"], body["field"], body["country"]) == ("not_shippable", "address_id", "RU")
    row = await order_row(shop, order["id"])
    assert (row.ship_country, row.total, row.shipping_amount) == (None, 1500, None)
    pay = await shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "invoice"})
    assert pay.status == 422 and (await pay.json())["error"] == "address_required"


async def test_a_whitelist_refuses_every_other_country(any_shop):
    shop = any_shop
    await patch(shop, f"/api/admin/products/{GREEN_TEA}/shipping", {"ships_only_to": ["KR", "JP"]})
    order = await shop.placed()
    refused = await check_out(shop, order["id"], await add_address(shop, HANOI))
    assert refused.status == 422 and (await refused.json())["error"] == "not_shippable"
    assert (await check_out(shop, order["id"], await add_address(shop, SEOUL))).status == 200


async def test_a_zone_on_quote_says_so_and_stores_nothing(any_shop):
    shop = any_shop
    order = await shop.placed()
    response = await check_out(shop, order["id"], await add_address(shop, BERLIN))
    body = await response.json()
    assert response.status == 422 and (body["error"], body["field"]) == ("shipping_on_quote", "address_id")
    assert "quoted on request" in body["message"]
    assert (await order_row(shop, order["id"])).ship_country is None


async def test_a_parcel_heavier_than_every_band_is_on_quote(shop):
    order = await shop.placed(product_id=YUJA_TEA, quantity=9)  # 10.8 kg; Asia's bands end at 10 kg
    response = await check_out(shop, order["id"], await add_address(shop, HANOI))
    assert response.status == 422 and (await response.json())["error"] == "shipping_on_quote"


async def test_the_checkout_summary_before_an_address_has_no_shipping(shop):
    order = await shop.placed()
    body = await (await shop.get(f"/api/orders/{order['id']}/checkout", "buyer")).json()
    assert (body["ship_to"], body["shipping"], body["total"], body["payable"]) == (None, None, 1500, False)


async def test_only_the_buyer_checks_out_their_order_with_their_own_address(shop):
    order = await shop.placed()
    members = await add_address(shop, SEOUL, who="member")
    assert (await check_out(shop, order["id"], members, who="member")).status == 404
    refused = await check_out(shop, order["id"], members)
    assert refused.status == 422 and (await refused.json())["field"] == "address_id"
    assert (await shop.get(f"/api/orders/{order['id']}/checkout", "member")).status == 404


async def test_a_cancelled_order_cannot_be_checked_out(shop):
    order = await shop.placed()
    await shop.post(f"/api/orders/{order['id']}/cancel", "buyer")
    response = await check_out(shop, order["id"], await add_address(shop, SEOUL))
    body = await response.json()
    assert response.status == 409 and (body["error"], body["current_status"]) == ("illegal_transition", "cancelled")


# --- payment needs the ship-to address, and charges the total with shipping ------------

async def test_payment_without_a_ship_to_address_is_refused(any_shop):
    shop = any_shop
    order = await shop.placed()
    response = await shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "invoice"})
    body = await response.json()
    assert response.status == 422 and (body["error"], body["field"]) == ("address_required", "address_id")
    assert (await order_row(shop, order["id"])).payment_ref is None


async def test_the_card_is_charged_goods_shipping_and_duties_and_the_order_is_paid(any_shop):
    shop = any_shop
    order = await shop.placed()
    await check_out(shop, order["id"], await add_address(shop, NEW_YORK))
    pay = await (await shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "sandbox"})).json()
    assert (pay["amount"], pay["currency"]) == (3120, "USD")

    charged = await shop.post("/api/payments/sandbox/charge", "buyer",
                              {"payment_ref": pay["payment_ref"], "card_number": "4242 4242 4242 4242"})

    assert charged.status == 200, await charged.text()
    paid = (await charged.json())["order"]
    assert (paid["status"], paid["total"], paid["ship_to"]["country"]) == ("paid", 3120, "US")


async def test_once_payment_started_the_address_and_total_stay(shop):
    order = await shop.placed()
    await check_out(shop, order["id"], await add_address(shop, SEOUL))
    await shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "invoice"})
    response = await check_out(shop, order["id"], await add_address(shop, NEW_YORK))
    assert response.status == 409 and (await response.json())["error"] == "payment_started"
    assert (await order_row(shop, order["id"])).total == 1800


async def test_a_broker_is_credited_on_the_goods_not_on_shipping(shop):
    await shop.go_live()
    code = await shop.coview()
    order = await shop.placed(show_id=1, coview=code)  # exhibition price 1200
    await check_out(shop, order["id"], await add_address(shop, NEW_YORK))
    assert (await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")).status == 200
    report = await (await shop.get("/api/reports/brokers", "admin")).json()
    mine = next(r for r in report if r["broker"]["id"] == MEMBER)
    assert mine["currencies"]["USD"]["revenue"] == 1200 and mine["currencies"]["USD"]["commission"] == 36


# --- shipping with tracking -------------------------------------------------------------

async def paid_order(shop) -> dict[str, Any]:
    order = await shop.placed()
    await check_out(shop, order["id"], await add_address(shop, MOSCOW))
    assert (await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")).status == 200
    return order


async def test_shipping_with_a_carrier_and_number_shows_the_buyer_a_tracking_link(any_shop):
    shop = any_shop
    order = await paid_order(shop)
    shipped = await shop.post(f"/api/orders/{order['id']}/ship", "admin",
                              {"carrier": "dhl", "tracking_number": "1234567890"})
    assert shipped.status == 200, await shipped.text()
    mine = await (await shop.get(f"/api/orders/{order['id']}", "buyer")).json()
    assert mine["status"] == "shipped"
    assert mine["tracking"] == {
        "carrier": "DHL", "carrier_name": "DHL Express", "number": "1234567890",
        "url": "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id=1234567890"}
    sent = [e for e in shop.events.named("order") if e[1] == BUYER and e[3]["status"] == "shipped"]
    assert sent and sent[-1][3]["tracking"]["number"] == "1234567890"


async def test_korea_post_ems_and_cj_have_their_links_and_others_a_generic_one(shop):
    links = {}
    for carrier in ("EMS", "CJ", "Pony Express"):
        order = await paid_order(shop)
        body = await (await shop.post(f"/api/orders/{order['id']}/ship", "admin",
                                      {"carrier": carrier, "tracking_number": "EE123456789KR"})).json()
        links[carrier] = body["tracking"]["url"]
    assert links["EMS"].startswith("https://service.epost.go.kr/")
    assert links["CJ"].startswith("https://trace.cjlogistics.com/")
    assert links["Pony Express"] == "https://t.17track.net/en#nums=EE123456789KR"


async def test_a_tracking_number_without_a_carrier_is_422_and_the_order_stays_paid(shop):
    order = await paid_order(shop)
    response = await shop.post(f"/api/orders/{order['id']}/ship", "admin", {"tracking_number": "1234567890"})
    assert response.status == 422 and (await response.json())["field"] == "carrier"
    bad = await shop.post(f"/api/orders/{order['id']}/ship", "admin", {"carrier": "DHL", "tracking_number": "<x>"})
    assert bad.status == 422 and (await bad.json())["field"] == "tracking_number"
    assert (await order_row(shop, order["id"])).status.value == "paid"


async def test_shipping_without_a_body_still_works_for_the_admin_page(shop):
    order = await paid_order(shop)
    response = await shop.client.post(f"/api/orders/{order['id']}/ship", headers=await shop.headers("admin"))
    assert response.status == 200 and (await response.json())["tracking"] is None


# --- the admin's tables and product facts -----------------------------------------------

CLASS_TABLE = {"scope": "class:fragile", "currency": "USD", "zones": [
    {"name": "Russia", "countries": ["RU"], "bands": [{"up_to_grams": 1000, "price": 5000}]},
]}


async def test_a_class_table_comes_before_the_supplier_and_default_tables(any_shop):
    shop = any_shop
    created = await put(shop, "/api/admin/shipping-tables", CLASS_TABLE)
    assert created.status == 201, await created.text()
    changed = await patch(shop, f"/api/admin/products/{GREEN_TEA}/shipping",
                          {"shipping_class": "fragile", "weight_grams": 250})
    product = await changed.json()
    assert (product["weight_grams"], product["never_ships_to"]) == (250, [])
    order = await shop.placed(quantity=4)  # 1 kg
    body = await (await check_out(shop, order["id"], await add_address(shop, MOSCOW))).json()
    assert (body["shipping"], body["total"]) == (5000, 11000)
    refused = await check_out(shop, order["id"], await add_address(shop, SEOUL))  # no Korea zone in that table
    assert refused.status == 422 and (await refused.json())["error"] == "not_shippable"


async def test_putting_a_table_again_replaces_it(shop):
    first = await (await put(shop, "/api/admin/shipping-tables", CLASS_TABLE)).json()
    again = await put(shop, "/api/admin/shipping-tables", {**CLASS_TABLE, "zones": [
        {"name": "Everywhere", "countries": ["*"], "on_quote": True}]})
    assert again.status == 200 and (await again.json())["id"] == first["id"]
    tables = await (await shop.get("/api/admin/shipping-tables", "admin")).json()
    assert [t["scope"] for t in tables] == ["class:fragile", "default"]


async def test_a_bad_table_is_422_with_the_field_and_the_old_one_stays(shop):
    before = await (await shop.get("/api/admin/shipping-tables", "admin")).json()
    cases = [
        ({"zones": [{"name": "A", "countries": ["RU"], "bands": [{"up_to_grams": 500, "price": 1},
                                                                 {"up_to_grams": 400, "price": 2}]}]},
         "zones.0.bands.1.up_to_grams"),
        ({"zones": [{"name": "A", "countries": ["QQ"], "bands": [{"up_to_grams": 5, "price": 1}]}]},
         "zones.0.countries.0"),
        ({"zones": [{"name": "A", "countries": ["RU"], "bands": [{"up_to_grams": 5, "price": 1}]},
                    {"name": "B", "countries": ["RU"], "bands": [{"up_to_grams": 5, "price": 1}]}]},
         "zones.1.countries"),
        ({"zones": [{"name": "A", "countries": ["RU"]}]}, "zones.0.bands"),
        ({"scope": "supplier:999"}, "scope"),
        ({"scope": "planet:mars"}, "scope"),
        ({"currency": "XYZ"}, "currency"),
    ]
    for change, field in cases:
        response = await put(shop, "/api/admin/shipping-tables", {**CLASS_TABLE, "scope": "default", **change})
        assert response.status == 422, (field, await response.text())
        assert (await response.json())["field"] == field
    assert await (await shop.get("/api/admin/shipping-tables", "admin")).json() == before


async def test_only_an_admin_keeps_the_tables_and_product_shipping(shop):
    for who in ("buyer", "host", "member"):
        assert (await put(shop, "/api/admin/shipping-tables", CLASS_TABLE, who=who)).status == 403
        assert (await patch(shop, f"/api/admin/products/{GREEN_TEA}/shipping", {"weight_grams": 1}, who=who)).status == 403
        assert (await shop.get("/api/admin/shipping-tables", who)).status == 403


async def test_a_product_with_no_known_weight_is_on_quote(shop):
    await patch(shop, f"/api/admin/products/{GREEN_TEA}/shipping", {"weight_grams": None})
    order = await shop.placed()
    response = await check_out(shop, order["id"], await add_address(shop, SEOUL))
    assert response.status == 422 and (await response.json())["error"] == "shipping_on_quote"


async def test_product_json_shows_its_shipping_facts_and_the_per_order_limit(shop):
    await patch(shop, f"/api/admin/products/{GREEN_TEA}/shipping", {"never_ships_to": ["ru", "BY"]})
    product = await (await shop.get(f"/api/products/{GREEN_TEA}")).json()
    assert (product["never_ships_to"], product["ships_only_to"], product["weight_grams"]) == (["BY", "RU"], None, 150)
    assert (product["moq"], product["max_per_order"]) == (1, 100)
    listed = await (await shop.get("/api/products")).json()
    assert all(p["max_per_order"] == 100 for p in listed)


async def test_the_catalog_can_leave_out_what_cannot_reach_a_country(shop):
    await patch(shop, f"/api/admin/products/{GREEN_TEA}/shipping", {"never_ships_to": ["RU"]})
    await patch(shop, f"/api/admin/products/{YUJA_TEA}/shipping", {"ships_only_to": ["KR"]})
    for_russia = {p["id"] for p in await (await shop.get("/api/products?ships_to=ru")).json()}
    for_korea = {p["id"] for p in await (await shop.get("/api/products?ships_to=KR")).json()}
    assert GREEN_TEA not in for_russia and YUJA_TEA not in for_russia and {GREEN_TEA, YUJA_TEA} <= for_korea
    bad = await shop.get("/api/products?ships_to=XX")
    assert bad.status == 422 and (await bad.json())["field"] == "ships_to"


# --- quantity messages ------------------------------------------------------------------

async def test_ordering_26_when_25_are_left_says_only_25_left(any_shop):
    shop = any_shop
    await shop.set_stock(GREEN_TEA, 25)
    response = await shop.order(quantity=26)
    body = await response.json()
    assert response.status == 409
    assert (body["error"], body["available"], body["message"]) == ("insufficient_stock", 25, "Only 25 left")
    assert await shop.stock(GREEN_TEA) == 25


async def test_ordering_when_none_are_left_is_still_sold_out(shop):
    await shop.set_stock(GREEN_TEA, 0)
    response = await shop.order(quantity=1)
    assert response.status == 409 and (await response.json())["error"] == "sold_out"


# --- a quote's order ships as quoted ----------------------------------------------------

async def test_a_quotes_order_ships_to_the_quoted_country_at_the_quoted_price(shop):
    from tests.orders.test_quotes import answer, request_quote

    quote = await request_quote(shop)  # 2 mask lines to RU, CIF
    assert (await answer(shop, quote["id"], who="admin")).status == 200
    accepted = await (await shop.post(f"/api/quotes/{quote['id']}/accept", "buyer")).json()
    order_id = accepted["order"]["id"]

    refused = await check_out(shop, order_id, await add_address(shop, SEOUL))
    body = await (await check_out(shop, order_id, await add_address(shop, MOSCOW))).json()

    assert refused.status == 422 and (await refused.json())["error"] == "not_shippable"
    assert (body["shipping"], body["duties"], body["incoterm"], body["total"]) == (0, None, "CIF", 16_000_000)
    assert "quote" in body["duties_note"]


# --- a checkout racing a payment being prepared ------------------------------------------

class HeldProvider:
    """A processor that answers checkout only when the test lets it (the outside edge)."""

    name = "held"

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def checkout(self, order) -> dict[str, Any]:
        self.asked.set()
        await self.release.wait()
        return {"payment_ref": f"held-{order.id}", "instructions": "none"}

    def parse_webhook(self, headers, body, now):
        raise NotImplementedError


async def test_a_checkout_while_payment_is_prepared_makes_that_payment_409_order_changed(shop):
    from web.api_orders import PROVIDERS

    held = HeldProvider()
    shop.app[PROVIDERS]["held"] = held
    order = await shop.placed()
    await check_out(shop, order["id"], await add_address(shop, SEOUL))  # total 1800
    new_york = await add_address(shop, NEW_YORK)

    paying = asyncio.ensure_future(shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "held"}))
    await asyncio.wait_for(held.asked.wait(), 10)
    moved = await check_out(shop, order["id"], new_york)  # total 3120 while the processor was asked for 1800
    held.release.set()
    response = await paying

    assert moved.status == 200
    body = await response.json()
    assert response.status == 409 and (body["error"], body["total"]) == ("order_changed", 3120)
    assert (await order_row(shop, order["id"])).payment_ref is None
