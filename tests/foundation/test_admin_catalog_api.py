"""The admin's catalog routes: suppliers, products (price, stock, details), packages and
special exhibitions, on SQLite and PostgreSQL; only admins; field errors named.

Demo facts: supplier 1 exists; product 1 green tea (USD 1500, stock 120), 8 the mask
line (industrial), 10 the package of 8 and 9; exhibition 1 prices products 1 and 2.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import bearer, login
from tests.orders.conftest import BUYER, GREEN_TEA, MASK_LINE, PACKAGE, open_shop


@pytest.fixture
async def shop(aiohttp_client, database_url, tmp_path):
    return await open_shop(aiohttp_client, database_url, tmp_path)


async def call(shop, method: str, path: str, body: Any, who: str | None = "admin"):
    headers = await shop.headers(who) if who else {}
    response = await shop.client.request(method, path, json=body, headers=headers)
    return response.status, await response.json()


def product_body(**overrides) -> dict[str, Any]:
    body = {"supplier_id": 1, "committee": "seafood", "name": "Geoje Rock Oysters 1kg",
            "description": "Fresh <b>oysters</b>", "price": 32000, "currency": "KRW", "stock": 40,
            "kind": "retail", "moq": 2, "image_url": "https://img.example/oysters.jpg"}
    body.update(overrides)
    return body


def fields(reply: dict) -> set[str]:
    return {f["field"] for f in reply.get("fields", [])} | ({reply["field"]} if "field" in reply else set())


async def test_admin_adds_a_supplier_and_a_product_the_public_catalog_lists(shop):
    status, supplier = await call(shop, "POST", "/api/admin/suppliers", {"name": "통영 굴 조합", "region": "Gyeongnam"})
    assert status == 201 and supplier["name"] == "통영 굴 조합"

    status, product = await call(shop, "POST", "/api/admin/products", product_body(supplier_id=supplier["id"]))

    assert status == 201, product
    assert (product["price"], product["currency"], product["stock"], product["moq"]) == (32000, "KRW", 40, 2)
    assert product["supplier"]["id"] == supplier["id"] and product["committee"] == "seafood"
    listed = await (await shop.client.get("/api/products", params={"q": "Geoje Rock"})).json()
    assert [p["id"] for p in listed] == [product["id"]]


@pytest.mark.parametrize("change, field", [
    ({"currency": "KR"}, "currency"),
    ({"currency": "ZZZ"}, "currency"),
    ({"price": -1}, "price"),
    ({"stock": -5}, "stock"),
    ({"moq": 0}, "moq"),
    ({"kind": "wholesale"}, "kind"),
    ({"price": "12.50"}, "price"),
    ({"supplier_id": 9999}, "supplier_id"),
    ({"committee": "nope"}, "committee"),
    ({"image_url": "javascript:alert(1)"}, "image_url"),
    ({"name": ""}, "name"),
])
async def test_a_bad_product_is_422_naming_its_field(shop, change, field):
    status, reply = await call(shop, "POST", "/api/admin/products", product_body(**change))
    assert status == 422, reply
    assert field in fields(reply)


async def test_only_admins_change_the_catalog(shop):
    assert (await call(shop, "POST", "/api/admin/suppliers", {"name": "x", "region": "y"}, who=None))[0] == 401
    for who in ("host", "member", "buyer"):
        status, reply = await call(shop, "PATCH", f"/api/admin/products/{GREEN_TEA}", {"restock": 5}, who=who)
        assert (status, reply["error"]) == (403, "forbidden")
    assert await shop.stock(GREEN_TEA) == 120


async def test_admin_changes_the_price_and_restocks(shop):
    status, product = await call(shop, "PATCH", f"/api/admin/products/{GREEN_TEA}",
                                 {"price": 1650, "restock": 30, "name": "Jeju Green Tea 100g"})
    assert status == 200, product
    assert (product["price"], product["stock"], product["name"]) == (1650, 150, "Jeju Green Tea 100g")
    status, product = await call(shop, "PATCH", f"/api/admin/products/{GREEN_TEA}", {"restock": -50})
    assert (status, product["stock"]) == (200, 100)


async def test_writing_off_more_than_is_left_is_409_and_changes_nothing(shop):
    status, reply = await call(shop, "PATCH", f"/api/admin/products/{GREEN_TEA}", {"restock": -121, "price": 1})
    assert (status, reply["error"], reply["field"], reply["stock"]) == (409, "not_enough_stock", "restock", 120)
    detail = await (await shop.client.get(f"/api/products/{GREEN_TEA}")).json()
    assert (detail["stock"], detail["price"]) == (120, 1500)


async def test_changing_an_unknown_product_is_404(shop):
    assert (await call(shop, "PATCH", "/api/admin/products/99999", {"restock": 1}))[0] == 404
    assert (await call(shop, "PATCH", "/api/admin/products/99999", {}))[0] == 404


@pytest.mark.parametrize("change, field", [
    ({"price": -1}, "price"), ({"moq": 0}, "moq"), ({"stock": 50}, "stock"), ({"restock": 1.5}, "restock"),
])
async def test_a_bad_change_is_422_naming_its_field(shop, change, field):
    status, reply = await call(shop, "PATCH", f"/api/admin/products/{GREEN_TEA}", change)
    assert status == 422 and field in fields(reply), reply


async def test_a_sold_out_product_sells_again_once_restocked(shop):
    await shop.set_stock(GREEN_TEA, 1)
    await shop.placed(quantity=1)
    assert (await shop.order(quantity=1)).status == 409
    await call(shop, "PATCH", f"/api/admin/products/{GREEN_TEA}", {"restock": 3})
    placed = await shop.placed(quantity=2)
    assert placed["quantity"] == 2 and await shop.stock(GREEN_TEA) == 1


async def test_restocking_a_product_on_a_live_show_tells_its_viewers(shop):
    await shop.go_live(1)
    await call(shop, "PATCH", f"/api/admin/products/{GREEN_TEA}", {"restock": 10})
    assert shop.events.named("stock") == [("show", 1, "stock", {"product_id": GREEN_TEA, "stock": 130})]


async def test_admin_defines_a_package_of_products_with_quantities(shop):
    _, package = await call(shop, "POST", "/api/admin/products",
                            product_body(name="Oyster farm starter kit", kind="industrial", currency="USD"))
    status, reply = await call(shop, "POST", "/api/admin/packages", {
        "package_id": package["id"], "items": [{"product_id": MASK_LINE, "quantity": 2}, {"product_id": 3, "quantity": 5}]})
    assert status == 201, reply
    detail = await (await shop.client.get(f"/api/products/{package['id']}")).json()
    assert sorted((i["product_id"], i["quantity"]) for i in detail["package_items"]) == [(3, 5), (MASK_LINE, 2)]


@pytest.mark.parametrize("items, field", [
    ([{"product_id": "self", "quantity": 1}], "items.0.product_id"),
    ([{"product_id": 3, "quantity": 1}, {"product_id": 3, "quantity": 2}], "items.1.product_id"),
    ([{"product_id": 99999, "quantity": 1}], "items.0.product_id"),
    ([{"product_id": PACKAGE, "quantity": 1}], "items.0.product_id"),  # no nesting
    ([{"product_id": 3, "quantity": 0}], "items.0.quantity"),
    ([], "items"),
])
async def test_a_bad_package_is_422_naming_the_component(shop, items, field):
    _, package = await call(shop, "POST", "/api/admin/products", product_body(kind="industrial"))
    items = [{**i, "product_id": package["id"]} if i["product_id"] == "self" else i for i in items]
    status, reply = await call(shop, "POST", "/api/admin/packages", {"package_id": package["id"], "items": items})
    assert status == 422 and field in fields(reply), reply


async def test_only_an_industrial_product_can_be_a_package(shop):
    status, reply = await call(shop, "POST", "/api/admin/packages",
                               {"package_id": GREEN_TEA, "items": [{"product_id": 3, "quantity": 1}]})
    assert status == 422 and "package_id" in fields(reply)


async def test_admin_creates_an_exhibition_whose_price_a_show_in_it_charges(shop):
    status, exhibition = await call(shop, "POST", "/api/admin/exhibitions", {
        "title": "Gangwon Potato Festival", "partner": "Gangwon State",
        "starts_at": "2020-01-01T00:00:00+09:00", "ends_at": "2099-01-01T00:00:00Z",
        "products": [{"product_id": GREEN_TEA, "price": 999, "currency": "USD"}]})
    assert status == 201, exhibition
    assert exhibition["starts_at"] == "2019-12-31T15:00:00+00:00"
    assert exhibition["products"] == [{"product_id": GREEN_TEA, "price": 999, "currency": "USD"}]
    status, show = await call(shop, "POST", "/api/shows", {
        "title": "Potato night", "scheduled_at": "2030-01-01T10:00:00Z", "exhibition_id": exhibition["id"],
        "host_id": 2, "segments": [{"title": "Tea", "committee": "food", "product_ids": [GREEN_TEA]}]})
    assert status == 201, show
    await shop.go_live(show["id"], show["segments"][0]["id"])
    await shop.watched(show["id"], BUYER)
    order = await shop.placed(product_id=GREEN_TEA, quantity=2, show_id=show["id"])
    assert (order["unit_price"], order["total"]) == (999, 1998)


@pytest.mark.parametrize("change, field", [
    ({"ends_at": "2019-01-01T00:00:00Z"}, "ends_at"),
    ({"starts_at": "2030-01-01T00:00:00"}, "starts_at"),  # no zone
    ({"products": [{"product_id": GREEN_TEA, "price": -1, "currency": "USD"}]}, "products.0.price"),
    ({"products": [{"product_id": GREEN_TEA, "price": 100, "currency": "KRW"}]}, "products.0.currency"),
    ({"products": [{"product_id": 99999, "price": 100, "currency": "USD"}]}, "products.0.product_id"),
    ({"products": [{"product_id": GREEN_TEA, "price": 1, "currency": "USD"},
                   {"product_id": GREEN_TEA, "price": 2, "currency": "USD"}]}, "products.1.product_id"),
])
async def test_a_bad_exhibition_is_422_naming_its_field(shop, change, field):
    body = {"title": "Fair", "partner": "Jeju", "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-02-01T00:00:00Z", **change}
    status, reply = await call(shop, "POST", "/api/admin/exhibitions", body)
    assert status == 422 and field in fields(reply), reply


async def test_a_member_cannot_create_an_exhibition(shop):
    token = await login(shop.client, "member@livemall.example")
    response = await shop.client.post("/api/admin/exhibitions", headers=bearer(token), json={
        "title": "x", "partner": "y", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z"})
    assert response.status == 403
