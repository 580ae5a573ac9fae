"""Exchange rates (issue 15, item 4): conversion exact across currency exponents, one
defined rounding, None when no rate is known, and the admin API refusing bad input with
4xx JSON errors and non-admins with 403."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from babel.numbers import list_currencies

from orders.exchange_rates import (
    MAX_RATES,
    RATE_SCALE,
    RateRefused,
    RateTable,
    convert_amount,
    parse_rate,
    round_half_away,
)
from orders.models import ExchangeRate
from tests.orders.conftest import Shop

DAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 3, 12, tzinfo=timezone.utc)


def table(*rates: tuple[str, str, str, date]) -> RateTable:
    return RateTable(ExchangeRate(base=base, quote=quote, rate_scaled=parse_rate(rate), as_of=as_of, updated_at=NOW)
                     for base, quote, rate, as_of in rates)


# --- conversion ---------------------------------------------------------------------------

def test_dollar_cents_become_whole_won():
    converted = table(("USD", "KRW", "1380", DAY)).convert(2200, "USD", "KRW")  # $22.00
    assert (converted.amount, converted.currency, converted.as_of) == (30_360, "KRW", DAY)  # ₩30,360


def test_whole_won_become_dollar_cents_through_the_inverse_rate():
    converted = table(("USD", "KRW", "1380", DAY)).convert(15_000, "KRW", "USD")  # ₩15,000 = $10.8695…
    assert converted.amount == 1087
    assert converted.rate.value == Fraction(1, 1380)  # the inverse is exact, never a rounded decimal


def test_three_decimal_dinars_and_zero_decimal_yen_keep_their_minor_units():
    rates = table(("USD", "KWD", "0.307", DAY), ("JPY", "KRW", "9.2", DAY))
    assert rates.convert(1000, "USD", "KWD").amount == 3070  # $10.00 → 3.070 KWD in fils
    assert rates.convert(1500, "JPY", "KRW").amount == 13_800  # ¥1,500 → ₩13,800


def test_halves_round_away_from_zero_once_at_the_end():
    rates = table(("USD", "RUB", "1.005", DAY))
    assert rates.convert(100, "USD", "RUB").amount == 101  # 100.5 kopecks → 101
    assert rates.convert(1, "USD", "RUB").amount == 1  # 1.005 kopecks → 1
    assert round_half_away(Fraction(5, 2)) == 3 and round_half_away(Fraction(-5, 2)) == -3
    assert round_half_away(Fraction(249, 100)) == 2


def test_a_cross_rate_goes_through_the_dollar_and_takes_the_older_date():
    rates = table(("USD", "KRW", "1380", DAY), ("USD", "RUB", "87.75", DAY - timedelta(days=2)))
    converted = rates.convert(138_000, "KRW", "RUB")  # ₩138,000 = $100 = ₽8,775.00
    assert (converted.amount, converted.as_of, converted.rate.via) == (877_500, DAY - timedelta(days=2), "USD")


def test_no_rate_gives_none_and_the_same_currency_is_itself():
    rates = table(("USD", "KRW", "1380", DAY))
    assert rates.convert(2200, "USD", "RUB") is None
    assert rates.convert(2200, "EUR", "KRW") is None
    assert RateTable([]).convert(2200, "USD", "KRW") is None
    same = rates.convert(2200, "USD", "USD")
    assert (same.amount, same.as_of) == (2200, None)


def test_the_pages_factor_rounds_to_the_same_unit_as_the_server():
    rates = table(("USD", "KRW", "1380", DAY), ("USD", "RUB", "87.75", DAY), ("USD", "VND", "25400", DAY))
    for target in ("RUB", "KRW", "VND", "USD"):
        for source, known in rates.conversions_to(target).items():
            num, den = (int(x) for x in known["factor"])
            for amount in (0, 1, 99, 2200, 15_000, 12_000_000, 1_999_999_999):
                in_the_browser = (2 * amount * num + den) // (2 * den)  # prices.js, in BigInt
                assert in_the_browser == rates.convert(amount, source, target).amount, (source, target, amount)


def test_rates_are_kept_to_twelve_decimals_exactly():
    assert parse_rate("87.25") == 87_250_000_000_000
    assert parse_rate(87.25) == 87_250_000_000_000  # a JSON number by its shortest repr
    assert parse_rate("0.000712345678901") == 712_345_679  # rounded half up at 10^-12
    assert parse_rate("1000000") == 1_000_000 * RATE_SCALE
    for bad in ("0", "-1", "abc", "NaN", "Infinity", "1000000.01", "0.0000000000001", ""):
        with pytest.raises(RateRefused):
            parse_rate(bad)
    assert convert_amount(2200, Fraction(parse_rate("87.75"), RATE_SCALE), "USD", "RUB") == 193_050


# --- the API ------------------------------------------------------------------------------

async def put(shop: Shop, body: object, who: str | None = "admin"):
    headers = await shop.headers(who) if who else {}
    return await shop.client.put("/api/admin/exchange-rates", json=body, headers=headers)


async def test_the_admin_sets_a_rate_and_pages_read_its_conversion(shop: Shop):
    body = {"base": "USD", "quote": "RUB", "rate": "90.5", "as_of": "2026-12-01"}
    response = await put(shop, body)
    assert response.status == 200, await response.text()  # the demo's USD→RUB, replaced
    assert (await response.json())["rate"] == "90.5"

    response = await shop.client.get("/api/exchange-rates?to=RUB")
    assert response.status == 200
    assert response.headers["Cache-Control"].startswith("public")
    data = await response.json()
    assert data["conversions"]["USD"] == {"rate": "90.5", "as_of": "2026-12-01", "via": None, "factor": ["181", "2"]}
    assert data["exponent"] == 2 and "RUB" in data["currencies"]


async def test_putting_the_reverse_pair_replaces_it_rather_than_adding_a_second_rate(shop: Shop):
    response = await put(shop, {"base": "RUB", "quote": "USD", "rate": "0.0111", "as_of": "2026-12-01"})
    assert response.status == 200
    listed = (await (await shop.get("/api/admin/exchange-rates", "admin")).json())["rates"]
    pairs = [(r["base"], r["quote"]) for r in listed]
    assert ("RUB", "USD") in pairs and ("USD", "RUB") not in pairs


async def test_a_new_pair_is_created_and_deleted(shop: Shop):
    response = await put(shop, {"base": "JPY", "quote": "KRW", "rate": 9.2, "as_of": "2026-12-01"})
    assert response.status == 201
    response = await shop.client.delete("/api/admin/exchange-rates/KRW/JPY", headers=await shop.headers("admin"))
    assert response.status == 204
    response = await shop.client.delete("/api/admin/exchange-rates/KRW/JPY", headers=await shop.headers("admin"))
    assert response.status == 404 and (await response.json())["error"] == "not_found"


BAD_INPUT = [
    ({"base": "XYZ"}, "base"),  # not ISO 4217
    ({"quote": "rub"}, "quote"),
    ({"quote": "USD"}, "quote"),  # a currency to itself
    ({"rate": "0"}, "rate"),
    ({"rate": -3}, "rate"),
    ({"rate": "1e9"}, "rate"),  # beyond a million
    ({"rate": "eighty"}, "rate"),
    ({"rate": True}, "rate"),
    ({"rate": "1" * 41}, "rate"),  # bounded length
    ({"as_of": (datetime.now(timezone.utc) + timedelta(days=2)).date().isoformat()}, "as_of"),  # the future
    ({"as_of": "1999-12-31"}, "as_of"),
    ({"as_of": "yesterday"}, "as_of"),
    ({"note": "hi"}, "note"),  # unknown field
]


async def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(shop: Shop):
    for change, field in BAD_INPUT:
        body = {"base": "USD", "quote": "CNY", "rate": "7.1", "as_of": "2026-12-01", **change}
        response = await put(shop, body)
        assert response.status == 422, (change, await response.text())
        data = await response.json()
        named = {data.get("field"), *(f["field"] for f in data.get("fields", []))}
        assert field in named, (change, data)
    listed = await (await shop.client.get("/api/exchange-rates?to=CNY")).json()
    assert listed["conversions"]["USD"]["rate"] == "7.12"  # the demo's, unchanged


async def test_a_body_that_is_not_json_is_a_400_json_error(shop: Shop):
    response = await shop.client.put("/api/admin/exchange-rates", data=b"{rate: 1",
                                     headers={**await shop.headers("admin"), "Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"] == "bad_request"


async def test_the_number_of_pairs_is_bounded(shop: Shop):
    kept = (await (await shop.get("/api/admin/exchange-rates", "admin")).json())["rates"]
    paired = {r["quote"] for r in kept} | {"USD"}
    codes = sorted(c for c in list_currencies() if len(c) == 3 and c.isupper() and c not in paired)
    async with shop.db.transaction() as session:
        session.add_all(ExchangeRate(base="USD", quote=code, rate_scaled=RATE_SCALE, as_of=DAY, updated_at=NOW)
                        for code in codes[: MAX_RATES - len(kept)])

    response = await put(shop, {"base": "EUR", "quote": "JPY", "rate": "160", "as_of": "2026-12-01"})
    assert response.status == 422
    assert (await response.json())["max_rates"] == MAX_RATES
    response = await put(shop, {"base": "USD", "quote": "RUB", "rate": "88", "as_of": "2026-12-01"})
    assert response.status == 200  # replacing a kept pair is still allowed


async def test_only_an_admin_reads_or_changes_the_rates(shop: Shop):
    body = {"base": "USD", "quote": "RUB", "rate": "1", "as_of": "2026-12-01"}
    for who, status in (("buyer", 403), ("member", 403), ("host", 403), (None, 401)):
        shop.client.session.cookie_jar.clear()  # signing in sets the session cookie too
        response = await put(shop, body, who)
        assert response.status == status
        assert (await response.json())["error"] == ("forbidden" if who else "unauthorized")
        headers = await shop.headers(who) if who else {}
        assert (await shop.client.get("/api/admin/exchange-rates", headers=headers)).status == status
        deleted = await shop.client.delete("/api/admin/exchange-rates/USD/RUB", headers=headers)
        assert deleted.status == status
    listed = await (await shop.client.get("/api/exchange-rates?to=RUB")).json()
    assert listed["conversions"]["USD"]["rate"] == "87.75"  # the demo's, unchanged


async def test_an_unknown_target_currency_is_refused(shop: Shop):
    response = await shop.client.get("/api/exchange-rates?to=XYZ")
    assert response.status == 422 and (await response.json())["field"] == "to"


async def test_a_rate_is_stored_exactly_on_both_databases(any_shop: Shop):
    body = {"base": "KRW", "quote": "EUR", "rate": "0.000654321098765", "as_of": "2026-11-30"}
    response = await put(any_shop, body)
    assert response.status == 201, await response.text()
    listed = (await (await any_shop.get("/api/admin/exchange-rates", "admin")).json())["rates"]
    assert {"base": "KRW", "quote": "EUR", "rate": "0.000654321099", "as_of": "2026-11-30"}.items() <= next(
        r for r in listed if r["base"] == "KRW").items()


# --- the buyer's currency -----------------------------------------------------------------

def page_data(html: str) -> dict:
    start = html.index('id="page-data">') + len('id="page-data">')
    return json.loads(html[start: html.index("</script>", start)])


async def test_a_visitor_reads_prices_in_the_currency_of_the_pages_language(shop: Shop):
    for language, currency in (("ru-RU", "RUB"), ("vi", "VND"), ("zh-CN", "CNY"), ("ko", "KRW"), ("en-US", "USD")):
        response = await shop.client.get("/", headers={"Accept-Language": language})
        assert page_data(await response.text())["currency"] == currency, language


async def test_the_accounts_country_comes_before_the_language_and_the_picker_before_both(shop: Shop):
    token = await shop.token("member")  # Иван, RU
    response = await shop.client.get("/", headers={"Accept-Language": "ko", "Cookie": f"livemall_session={token}"})
    assert page_data(await response.text())["currency"] == "RUB"
    response = await shop.client.get("/", headers={"Accept-Language": "ko",
                                                   "Cookie": f"livemall_session={token}; livemall_currency=EUR"})
    assert page_data(await response.text())["currency"] == "EUR"
    response = await shop.client.get("/", headers={"Accept-Language": "ko",
                                                   "Cookie": f"livemall_session={token}; livemall_currency=XYZ"})
    assert page_data(await response.text())["currency"] == "RUB"  # not a currency: ignored
