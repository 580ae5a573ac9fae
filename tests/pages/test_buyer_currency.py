"""Prices in the buyer's currency in Chromium (issue 15, item 4; issue 16, item 2): a
Russian viewer sees "≈ … ₽" beside the dollar price on the pinned product card, dated by
its rate, and the checkout says they pay in dollars. The figure is the server's
conversion to the kopeck (the page rounds with the API's integer factor)."""

from __future__ import annotations

import re

from datetime import datetime, timezone

import pytest
from babel import Locale
from sqlalchemy import select

from orders import exchange_rates, shows
from orders.models import Product, Show
from tests.pages.conftest import open_page, sign_in
from web.money_format import format_money

pytestmark = pytest.mark.asyncio(loop_scope="session")

SNAIL = "Snail Mucin Essence 100ml"  # $22.00


def _plain(text: str) -> str:
    return text.replace("\xa0", " ").replace("\u202f", " ")


async def _pin(site, name: str) -> Product:
    async with site.db.transaction() as session:
        product = await session.scalar(select(Product).where(Product.name == name))
        await shows.mark_live(session, 1, datetime.now(timezone.utc), None)
        (await session.get(Show, 1)).pinned_product_id = product.id
        return product


async def _expected(site, amount: int, source: str, target: str, locale: str) -> str:
    async with site.db.session() as session:
        converted = await exchange_rates.convert(session, amount, source, target)
    return "≈ " + _plain(format_money(converted.amount, target, Locale.parse(locale)))


async def test_a_russian_viewer_sees_roubles_beside_the_dollar_price_and_pays_in_dollars(site, new_context):
    product = await _pin(site, SNAIL)
    context = await new_context(locale="ru-RU")
    await sign_in(context, site, "member@livemall.example")  # Иван Петров, RU
    page = await open_page(context, site.at("/shows/1"))

    approx = page.get_by_test_id("approx")
    await approx.wait_for()
    assert _plain(await page.get_by_test_id("price").text_content()) == "22,00 $"
    assert _plain(await approx.text_content()) == await _expected(site, 2200, "USD", "RUB", "ru")  # ≈ 1 930,50 ₽
    assert "USD" in await approx.get_attribute("title") and await approx.get_attribute("data-as-of")

    response = await context.request.post(site.at("/api/orders"), data={"product_id": product.id, "quantity": 1},
                                          headers={"Idempotency-Key": "buyer-currency-1"})
    assert response.status == 201, await response.text()
    order = await response.json()
    checkout = await open_page(context, site.at(f"/orders/{order['id']}/checkout"))
    assert "USD" in await checkout.get_by_test_id("pay-in").text_content()
    total_approx = checkout.get_by_test_id("total-approx")
    await total_approx.wait_for()
    assert _plain(await total_approx.text_content()) == await _expected(site, order["total"], "USD", "RUB", "ru")
    assert _plain(await checkout.get_by_test_id("total").text_content()) == "22,00 $"  # what is charged


async def test_the_currency_picker_converts_at_once_and_is_remembered(site, new_context):
    await _pin(site, SNAIL)
    context = await new_context(locale="ru-RU")
    page = await open_page(context, site.at("/shows/1"))
    approx = page.get_by_test_id("approx")
    await approx.filter(has_text="₽").wait_for()  # a Russian visitor: roubles

    await page.get_by_test_id("currency-picker").select_option("KRW")
    won = await _expected(site, 2200, "USD", "KRW", "ru")  # ≈ 30 360 ₩: no fraction digits
    await approx.filter(has_text="₩").wait_for()
    assert _plain(await approx.text_content()) == won

    await page.reload()
    await page.get_by_test_id("approx").filter(has_text="₩").wait_for()
    assert await page.get_by_test_id("currency-picker").input_value() == "KRW"


async def test_the_admin_keeps_the_rates_on_the_admin_page(site, new_context):
    context = await new_context(locale="ru-RU")
    await sign_in(context, site, "admin@livemall.example")
    page = await open_page(context, site.at("/admin#exchange-rates"))
    table = page.get_by_test_id("exchange-rates")
    await table.locator('tr[data-pair="USD-RUB"]').wait_for()  # the demo's

    form = page.locator("#rate-form")
    await form.locator('[name="base"]').fill("usd")
    await form.locator('[name="quote"]').fill("RUB")
    await form.locator('[name="rate"]').fill("90,5")  # a Russian decimal comma
    await form.locator("button[type=submit]").click()
    await table.locator('tr[data-pair="USD-RUB"] .rate').filter(has_text="90.5").wait_for()

    await form.locator('[name="quote"]').fill("XYZ")
    await form.locator('[name="rate"]').fill("91")
    await form.locator("button[type=submit]").click()
    # Beside the field, in the page's language (the API's message is translated by its code).
    error = form.locator('.field-error[data-for="quote"]').filter(has_text=re.compile(r"\S"))
    await error.wait_for()
    assert not (await error.text_content()).isascii()
