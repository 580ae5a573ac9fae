"""The checkout page in Chromium (issue 15, item 1): the hold's countdown, adding a
ship-to address (country from the list), shipping and the DAP note in the totals, and
paying by invoice through the pay API."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from orders import shows
from orders.models import Product, Show, utcnow

from tests.pages.conftest import open_page, shoot, sign_in, watch_page

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def placed_order(context, site, quantity: int = 1) -> dict:
    response = await context.request.post(site.at("/api/orders"), data={"product_id": 1, "quantity": quantity},
                                          headers={"Idempotency-Key": f"page-checkout-{quantity}"})
    assert response.status == 201, await response.text()
    return await response.json()


async def fill_moscow(page) -> None:
    form = page.locator("#address-form")
    await form.locator('[name="name"]').fill("Анна Петрова")
    await form.locator('[name="country"]').select_option("RU")
    await form.locator('[name="line1"]').fill("ул. Тверская, д. 7, кв. 12")
    await form.locator('[name="city"]').fill("Москва")
    await form.locator('[name="postal_code"]').fill("125009")
    await form.locator('[name="phone"]').fill("+7 495 123-45-67")


async def test_a_buyer_adds_an_address_sees_shipping_and_pays_by_invoice(site, new_context, tmp_path):
    context = await new_context()
    await sign_in(context, site, "buyer@livemall.example")
    order = await placed_order(context, site, quantity=2)
    page = await open_page(context, site.at(f"/orders/{order['id']}/checkout"))

    assert re.fullmatch(r"\d+:\d\d", await page.get_by_test_id("countdown").text_content())
    assert await page.get_by_test_id("pay").is_disabled()  # no address yet
    await fill_moscow(page)
    await page.locator("#address-form button[type=submit]").click()

    await page.get_by_test_id("shipping").filter(has_text="$14.00").wait_for()
    assert await page.get_by_test_id("total").text_content() == "$44.00"  # 2 × $15.00 + $14.00
    assert "paid by the buyer" in await page.get_by_test_id("duties-note").text_content()
    assert "Москва" in await page.get_by_test_id("address-list").text_content()

    await page.get_by_test_id("provider").select_option("invoice")
    await page.get_by_test_id("pay").click()
    await page.get_by_test_id("payment").filter(has_text=f"INV-{order['id']:08d}").wait_for()
    await shoot(page, "checkout", tmp_path)


async def test_a_bad_phone_is_shown_beside_the_phone_field(site, new_context):
    context = await new_context()
    await sign_in(context, site, "buyer@livemall.example")
    order = await placed_order(context, site)
    page = await open_page(context, site.at(f"/orders/{order['id']}/checkout"))

    await fill_moscow(page)
    await page.locator('#address-form [name="phone"]').fill("12")
    await page.locator("#address-form button[type=submit]").click()

    slot = page.locator('#address-form .field-error[data-for="phone"]')
    await slot.filter(has_text=re.compile(".+")).wait_for()
    assert await page.locator('#address-form [name="phone"]').get_attribute("aria-invalid") == "true"
    assert await page.get_by_test_id("shipping").text_content() == "Choose an address to see shipping."


async def test_a_country_the_product_cannot_reach_is_refused_on_the_page(site, new_context):
    context = await new_context()
    await sign_in(context, site, "buyer@livemall.example")
    order = await placed_order(context, site)
    page = await open_page(context, site.at(f"/orders/{order['id']}/checkout"))

    form = page.locator("#address-form")
    await form.locator('[name="name"]').fill("Max Muster")
    await form.locator('[name="country"]').select_option("DE")  # the demo table quotes the rest of the world
    await form.locator('[name="line1"]').fill("Unter den Linden 1")
    await form.locator('[name="city"]').fill("Berlin")
    await form.locator('[name="postal_code"]').fill("10117")
    await form.locator('[name="phone"]').fill("+49 30 20230")
    await form.locator("button[type=submit]").click()

    await form.locator(".form-error").filter(has_text="quoted on request").wait_for()
    assert await page.get_by_test_id("pay").is_disabled()


async def test_another_buyers_checkout_page_is_not_found_and_visitors_sign_in(site, new_context):
    buyer = await new_context()
    await sign_in(buyer, site, "buyer@livemall.example")
    order = await placed_order(buyer, site)
    member = await new_context()
    await sign_in(member, site, "member@livemall.example")
    response = await member.request.get(site.at(f"/orders/{order['id']}/checkout"))
    assert response.status == 404
    visitor = await new_context()
    page = await open_page(visitor, site.at(f"/orders/{order['id']}/checkout"))
    assert "/login?next=" in page.url


async def test_the_watch_pages_order_line_leads_to_checkout(site, new_context):
    async with site.db.transaction() as session:
        await shows.mark_live(session, 1, utcnow(), None)
        show = await session.get(Show, 1)
        show.pinned_product_id = await session.scalar(select(Product.id).where(Product.name.like("Jeju Organic%")))
    context = await new_context()
    await sign_in(context, site, "buyer@livemall.example")
    page = await watch_page(context, site)

    await page.click("#buy-button")
    await page.click("#confirm-buy")
    await page.get_by_test_id("checkout-link").click()

    await page.wait_for_url("**/orders/*/checkout")
    assert re.fullmatch(r"\d+:\d\d", await page.get_by_test_id("countdown").text_content())
