"""The address book (issue 15, item 1): per-country rules, UTF-8, owner only; on both
databases."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from orders.addresses import AddressIn, checked
from orders.errors import Invalid
from orders.models import Address

SEOUL = {"name": "김민지", "line1": "세종대로 110", "line2": "3층", "city": "서울특별시", "region": "중구",
         "postal_code": "04524", "country": "KR", "phone": "010-1234-5678"}
MOSCOW = {"name": "Анна Петрова", "line1": "ул. Тверская, д. 7, кв. 12", "city": "Москва",
          "postal_code": "125009", "country": "RU", "phone": "+7 495 123-45-67"}
HANOI = {"name": "Nguyễn Văn An", "line1": "12 Tràng Tiền", "city": "Hà Nội", "postal_code": "100000",
         "country": "VN", "phone": "024 3825 3536"}


def address(**fields) -> AddressIn:
    return AddressIn(**{**SEOUL, **fields})


# --- the rules, without a database -----------------------------------------------------

def test_a_korean_address_is_kept_in_hangul_with_its_phone_in_e164():
    valid = checked(address())
    assert (valid.name, valid.city, valid.phone) == ("김민지", "서울특별시", "+821012345678")


def test_a_russian_address_is_kept_in_cyrillic():
    valid = checked(AddressIn(**MOSCOW))
    assert (valid.name, valid.line1, valid.phone) == ("Анна Петрова", "ул. Тверская, д. 7, кв. 12", "+74951234567")


@pytest.mark.parametrize("fields, field", [
    ({"country": "XX"}, "country"),
    ({"country": "KOR"}, "country"),
    ({"postal_code": None}, "postal_code"),
    ({"postal_code": "1234"}, "postal_code"),
    ({"phone": "12"}, "phone"),
    ({"phone": "+1 415 555 2671"}, "phone"),  # a valid number, but of the US: not for an address in Korea
    ({"name": "  "}, "name"),
    ({"line1": ""}, "line1"),
    ({"city": "\u202eevil"}, "city"),  # a bidi override
    ({"country": "US", "postal_code": "94105", "phone": "+1 415 555 2671", "region": None}, "region"),
])
def test_an_address_missing_or_breaking_a_part_names_the_field(fields, field):
    with pytest.raises(Invalid) as refused:
        checked(address(**fields))
    assert refused.value.detail["field"] == field


def test_a_country_without_postal_codes_needs_none():
    valid = checked(AddressIn(name="Chan Tai Man", line1="1 Queen's Road Central", city="Hong Kong",
                              country="HK", phone="+852 2123 4567"))
    assert valid.postal_code is None and valid.phone == "+85221234567"


def test_a_phone_given_in_national_form_is_read_as_a_number_of_the_address_country():
    assert checked(AddressIn(**HANOI)).phone == "+842438253536"


def test_a_lowercase_country_code_is_accepted_and_stored_upper():
    assert checked(address(country="kr")).country == "KR"


# --- the book over HTTP, on SQLite and PostgreSQL -------------------------------------

async def test_a_buyer_adds_lists_changes_and_deletes_addresses(any_shop):
    shop = any_shop
    created = await shop.post("/api/addresses", "buyer", MOSCOW)
    assert created.status == 201, await created.text()
    moscow = await created.json()
    assert (moscow["name"], moscow["country_name"], moscow["phone"]) == ("Анна Петрова", "Russian Federation",
                                                                        "+74951234567")
    seoul = await (await shop.post("/api/addresses", "buyer", SEOUL)).json()

    listed = await (await shop.get("/api/addresses", "buyer")).json()
    assert [a["id"] for a in listed] == [moscow["id"], seoul["id"]]

    headers = await shop.headers("buyer")
    changed = await shop.client.put(f"/api/addresses/{moscow['id']}", json={**MOSCOW, "line2": "подъезд 2"},
                                    headers=headers)
    assert changed.status == 200 and (await changed.json())["line2"] == "подъезд 2"
    assert (await shop.client.delete(f"/api/addresses/{seoul['id']}", headers=headers)).status == 204
    assert [a["id"] for a in await (await shop.get("/api/addresses", "buyer")).json()] == [moscow["id"]]


async def test_another_users_address_is_not_found_and_stays_unchanged(any_shop):
    shop = any_shop
    mine = await (await shop.post("/api/addresses", "buyer", SEOUL)).json()
    headers = await shop.headers("member")
    assert (await shop.get(f"/api/addresses/{mine['id']}", "member")).status == 404
    assert (await shop.client.put(f"/api/addresses/{mine['id']}", json=MOSCOW, headers=headers)).status == 404
    assert (await shop.client.delete(f"/api/addresses/{mine['id']}", headers=headers)).status == 404
    assert await (await shop.get("/api/addresses", "member")).json() == []
    assert (await (await shop.get(f"/api/addresses/{mine['id']}", "buyer")).json())["name"] == "김민지"


async def test_a_bad_address_is_422_with_the_field_and_nothing_is_stored(any_shop):
    shop = any_shop
    response = await shop.post("/api/addresses", "buyer", {**MOSCOW, "postal_code": "12345"})
    body = await response.json()
    assert response.status == 422 and (body["error"], body["field"]) == ("invalid", "postal_code")
    async with shop.db.session() as session:
        assert await session.scalar(select(func.count(Address.id))) == 0


async def test_a_replacement_that_breaks_a_rule_leaves_the_address_as_it_was(any_shop):
    shop = any_shop
    mine = await (await shop.post("/api/addresses", "buyer", SEOUL)).json()
    response = await shop.client.put(f"/api/addresses/{mine['id']}", json={**SEOUL, "phone": "nope"},
                                     headers=await shop.headers("buyer"))
    assert response.status == 422 and (await response.json())["field"] == "phone"
    assert (await (await shop.get(f"/api/addresses/{mine['id']}", "buyer")).json())["phone"] == "+821012345678"


async def test_signed_out_visitors_have_no_address_book(shop):
    assert (await shop.client.get("/api/addresses")).status == 401
    assert (await shop.client.post("/api/addresses", json=SEOUL)).status == 401
