"""The watch page before the realtime rooms connect: what the server renders and the
browser formats (prices in the show's currency, stock, the right purchase form)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from orders import shows
from orders.models import Product, ProductKind, Show, Supplier
from tests.pages.conftest import open_page, sign_in

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _pin(site, name: str) -> Product:
    async with site.db.transaction() as session:
        product = await session.scalar(select(Product).where(Product.name == name))
        show = await session.get(Show, 1)
        await shows.mark_live(session, show.id, datetime.now(timezone.utc), None)
        show.pinned_product_id = product.id
        return product


def _plain(text: str) -> str:
    return text.replace("\xa0", " ").replace("\u202f", " ")


async def test_pinned_product_shows_the_exhibition_price_and_stock(site, new_context):
    await _pin(site, "Jeju Organic Green Tea 100g")  # list 15.00 USD, exhibition 12.00 USD
    page = await open_page(await new_context(), site.at("/shows/1"))
    assert await page.locator("#pin-name").text_content() == "Jeju Organic Green Tea 100g"
    assert await page.get_by_test_id("price").text_content() == "$12.00"
    assert await page.locator("#pin-list-price").text_content() == "$15.00"
    assert await page.get_by_test_id("stock").text_content() == "120 left"


async def test_korean_page_formats_the_price_and_stock_in_korean(site, new_context):
    await _pin(site, "Jeju Organic Green Tea 100g")
    page = await open_page(await new_context(locale="ko-KR"), site.at("/shows/1"))
    assert _plain(await page.get_by_test_id("price").text_content()) == "US$12.00"
    assert await page.get_by_test_id("stock").text_content() == "120개 남음"


async def test_won_prices_have_no_fraction_digits(site, new_context):
    async with site.db.transaction() as session:
        supplier = await session.scalar(select(Supplier).limit(1))
        product = await session.scalar(select(Product).where(Product.name == "Seasoned Laver 20-pack"))
        won = Product(supplier_id=supplier.id, committee_id=product.committee_id, name="Laver (KRW)",
                      price=15000, currency="KRW", stock=3, kind=ProductKind.retail, moq=1)
        session.add(won)
    await _pin(site, "Laver (KRW)")
    page = await open_page(await new_context(locale="ko-KR"), site.at("/shows/1"))
    assert await page.get_by_test_id("price").text_content() == "₩15,000"
    assert await page.get_by_test_id("stock").text_content() == "3개 남음"


async def test_retail_product_offers_buy_to_a_signed_in_buyer(site, new_context):
    await _pin(site, "KF94 Mask (box of 50)")
    context = await new_context()
    await sign_in(context, site, "buyer@livemall.example")
    page = await open_page(context, site.at("/shows/1"))
    assert await page.locator("#buy-form").is_visible()
    assert not await page.locator("#quote-form").is_visible()
    await page.fill('#buy-form input[name="quantity"]', "2")
    await page.click("#buy-button")
    assert await page.locator("#confirm-text").text_content() == "Buy 2 × KF94 Mask (box of 50) for $36.00?"
    await page.click("#cancel-buy")
    assert not await page.locator("#buy-confirm").is_visible()


async def test_industrial_product_offers_a_quote_form_instead_of_buy(site, new_context):
    await _pin(site, "Mask Production Line")
    context = await new_context()
    await sign_in(context, site, "buyer@livemall.example")
    page = await open_page(context, site.at("/shows/1"))
    assert await page.locator("#quote-form").is_visible()
    assert not await page.locator("#buy-form").is_visible()
    assert await page.get_by_test_id("price").text_content() == "$85,000.00"
    assert await page.locator('#quote-form input[name="destination_country"]').input_value() == "CN"


async def test_anonymous_viewer_is_asked_to_sign_in_to_buy(site, new_context):
    await _pin(site, "KF94 Mask (box of 50)")
    page = await open_page(await new_context(), site.at("/shows/1"))
    assert not await page.locator("#buy-form").is_visible()
    assert await page.locator(".signin-hint a").get_attribute("href") == "/login?next=/shows/1"


async def test_won_prices_on_an_english_page(site, new_context):
    async with site.db.transaction() as session:
        supplier = await session.scalar(select(Supplier).limit(1))
        product = await session.scalar(select(Product).where(Product.name == "Seasoned Laver 20-pack"))
        session.add(Product(supplier_id=supplier.id, committee_id=product.committee_id, name="Laver (KRW)",
                            price=15000, currency="KRW", stock=3, kind=ProductKind.retail, moq=1))
    await _pin(site, "Laver (KRW)")
    page = await open_page(await new_context(locale="en-US"), site.at("/shows/1"))
    assert await page.get_by_test_id("price").text_content() == "₩15,000"
    assert await page.get_by_test_id("stock").text_content() == "3 left"
