"""The checkout routes' input handling (issue 15): the country list, malformed bodies,
bounds, and the address book's size."""

from __future__ import annotations

from tests.conftest import bearer, login

SEOUL = {"name": "김민지", "line1": "세종대로 110", "city": "서울", "postal_code": "04524", "country": "KR",
         "phone": "02-2133-0000"}


async def test_the_country_list_has_every_iso_country_by_name(client):
    response = await client.get("/api/countries")
    countries = await response.json()
    assert response.status == 200 and len(countries) >= 249
    by_code = {c["code"]: c["name"] for c in countries}
    assert by_code["KR"] == "Korea, Republic of" and by_code["RU"] == "Russian Federation"
    assert [c["name"] for c in countries] == sorted(c["name"] for c in countries)


async def test_unknown_fields_wrong_types_and_overlong_text_are_422_with_the_field(client):
    headers = bearer(await login(client, "buyer@livemall.example"))
    for body, field in (({**SEOUL, "admin": True}, "admin"), ({**SEOUL, "postal_code": 4524}, "postal_code"),
                        ({**SEOUL, "city": "x" * 101}, "city"), ({k: v for k, v in SEOUL.items() if k != "phone"},
                                                                 "phone")):
        response = await client.post("/api/addresses", json=body, headers=headers)
        assert response.status == 422, body
        assert [f["field"] for f in (await response.json())["fields"]] == [field]


async def test_a_body_that_is_not_json_is_400(client):
    headers = bearer(await login(client, "buyer@livemall.example"))
    response = await client.post("/api/addresses", data="name=x", headers=headers)
    assert response.status == 400


async def test_checkout_wants_an_integer_address_id(client):
    headers = bearer(await login(client, "buyer@livemall.example"))
    order = await client.post("/api/orders", json={"product_id": 1, "quantity": 1},
                              headers={**headers, "Idempotency-Key": "checkout-api-1"})
    order_id = (await order.json())["id"]
    for body in ({"address_id": "1"}, {"address_id": 0}, {"address_id": 2**31}, {}):
        response = await client.post(f"/api/orders/{order_id}/checkout", json=body, headers=headers)
        assert response.status == 422, body
    assert (await client.post("/api/orders/99999999999/checkout", json={"address_id": 1}, headers=headers)).status == 404


async def test_an_address_book_holds_twenty_addresses(client):
    headers = bearer(await login(client, "buyer@livemall.example"))
    for i in range(20):
        assert (await client.post("/api/addresses", json={**SEOUL, "line2": f"{i}호"}, headers=headers)).status == 201
    response = await client.post("/api/addresses", json=SEOUL, headers=headers)
    assert response.status == 422 and (await response.json())["field"] == "address"
