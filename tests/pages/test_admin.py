"""The admin page in a real browser: scheduling a show with its segments and
line-ups, adding a segment, changing a user's role and moving an order on, each
through the JSON API with its field errors shown where they belong."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from orders.models import Order, OrderStatus, Product, Role, Show, User
from tests.conftest import record_viewers
from tests.pages.conftest import go_live_in_db, open_page, sign_in, studio_page

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _admin_page(new_context, site, **options):
    context = await new_context(**options)
    await sign_in(context, site, "admin@livemall.example")
    return await open_page(context, site.at("/admin")), context


async def _product_ids(site, *names: str) -> list[str]:
    async with site.db.session() as session:
        return [str(await session.scalar(select(Product.id).where(Product.name == n))) for n in names]


async def test_admin_schedules_a_show_with_two_segments_and_their_line_ups(site, new_context):
    page, context = await _admin_page(new_context, site, timezone_id="Asia/Seoul")
    teas = await _product_ids(site, "Jeju Organic Green Tea 100g", "Yuja Honey Tea 1kg")
    (mask,) = await _product_ids(site, "KF94 Mask (box of 50)")
    await page.fill('#show-form input[name="title"]', "Busan Seafood Night")
    await page.fill('#show-form input[name="scheduled_at"]', "2031-03-01T19:30")
    first = page.locator("#show-form .segment-fields").nth(0)
    await first.locator('input[name="segment_title"]').fill("Teas")
    await first.locator('select[name="committee"]').select_option("food")
    await first.locator('select[name="product_ids"]').select_option(teas)
    await page.click("#show-form .add-segment")
    second = page.locator("#show-form .segment-fields").nth(1)
    await second.locator('input[name="segment_title"]').fill("Masks")
    await second.locator('select[name="committee"]').select_option("medical")
    await second.locator('select[name="product_ids"]').select_option([mask])

    await page.click('#show-form button[type="submit"]')

    await page.locator("#show-created a", has_text="Busan Seafood Night").wait_for()
    async with site.db.session() as session:
        show = await session.scalar(select(Show).where(Show.title == "Busan Seafood Night"))
        segments = [(s.title, s.committee.code, [str(p.product_id) for p in s.products]) for s in show.segments]
    assert segments == [("Teas", "food", teas), ("Masks", "medical", [mask])]
    assert show.scheduled_at == datetime(2031, 3, 1, 10, 30, tzinfo=timezone.utc)  # 19:30 in Seoul
    # The host's studio has the line-up to pin from.
    studio = await studio_page(context, site, show.id)
    assert await studio.locator(".lineup li", has_text="KF94 Mask").count() == 1
    assert [t.split()[0] for t in await studio.locator(".segment").all_text_contents()] == ["Teas", "Masks"]


async def test_admin_sees_each_field_error_next_to_its_field_and_segment(site, new_context):
    page, _ = await _admin_page(new_context, site)
    await page.click("#show-form .add-segment")
    await page.locator("#show-form .segment-fields").nth(0).locator('input[name="segment_title"]').fill("Teas")

    await page.click('#show-form button[type="submit"]')  # no title, no time, second segment untitled

    form = page.locator("#show-form")
    await form.locator('.field-error[data-for="title"]').filter(has_text="at least 1 character").wait_for()
    assert await form.locator('.field-error[data-for="scheduled_at"]').text_content() != ""
    second = form.locator(".segment-fields").nth(1)
    assert "at least 1 character" in await second.locator(".field-error").first.text_content()
    assert await second.locator('input[name="segment_title"]').get_attribute("aria-invalid") == "true"
    assert await form.locator(".segment-fields").nth(0).locator(".field-error").first.text_content() == ""
    async with site.db.session() as session:
        assert await session.scalar(select(Show).where(Show.title == "")) is None


async def test_admin_adds_a_segment_with_products_to_a_scheduled_show(site, new_context):
    page, _ = await _admin_page(new_context, site, locale="ko-KR")
    (essence,) = await _product_ids(site, "Snail Mucin Essence 100ml")
    form = page.locator("#segment-form")
    await form.locator('select[name="show_id"]').select_option("1")
    await form.locator('input[name="segment_title"]').fill("Encore: essences")
    await form.locator('select[name="committee"]').select_option("cosmetics")
    await form.locator('select[name="product_ids"]').select_option([essence])

    await form.locator('button[type="submit"]').click()

    await page.locator("#segment-added", has_text="Encore: essences").wait_for()
    assert await page.locator("#segment-added").text_content() == "4번째 코너를 추가했습니다: Encore: essences"
    assert "Encore: essences" in await page.locator('#shows tr[data-show-id="1"] .segment-titles').text_content()
    async with site.db.session() as session:
        show = await session.get(Show, 1)
        last = show.segments[-1]
        assert (last.title, [str(p.product_id) for p in last.products]) == ("Encore: essences", [essence])


async def test_admin_makes_a_buyer_a_host_from_the_users_list(site, new_context):
    page, _ = await _admin_page(new_context, site)
    async with site.db.session() as session:
        buyer = await session.scalar(select(User).where(User.email == "buyer@livemall.example"))
        admin = await session.scalar(select(User).where(User.email == "admin@livemall.example"))
    row = page.locator(f'#users tr[data-user-id="{buyer.id}"]')
    await row.locator('select[name="role"]').select_option("host")
    await row.locator('button[type="submit"]').click()
    await row.locator(".field-error", has_text="Saved").wait_for()
    async with site.db.session() as session:
        assert (await session.get(User, buyer.id)).role is Role.host
    # Nobody can lock themselves out: an admin's own row has no role form.
    assert await page.locator(f'#users tr[data-user-id="{admin.id}"] form').count() == 0
    # The new host can be chosen for a show after a reload.
    await page.reload()
    assert "王芳" in await page.locator('#show-form select[name="host_id"]').text_content()


async def test_admin_confirms_a_payment_and_ships_the_order(site, new_context):
    await go_live_in_db(site)
    buyer = await new_context()
    await sign_in(buyer, site, "buyer@livemall.example")
    (mask,) = await _product_ids(site, "KF94 Mask (box of 50)")
    await record_viewers(site.db, 1, 4)  # the buyer (user 4) watched show 1
    placed = await buyer.request.post(site.at("/api/orders"), data={"product_id": int(mask), "quantity": 1, "show_id": 1},
                                      headers={"Idempotency-Key": uuid.uuid4().hex})
    assert placed.status == 201, await placed.text()
    order_id = (await placed.json())["id"]
    page, _ = await _admin_page(new_context, site)
    row = page.locator(f'#orders tr[data-order-id="{order_id}"]')
    assert await row.locator(".order-state").text_content() == "confirmed, awaiting payment"
    assert await row.locator(".order-move:visible").all_text_contents() == ["Payment received"]

    await row.locator('.order-move[data-move="confirm-payment"]').click()
    await row.locator(".order-state", has_text="paid").wait_for()
    assert await row.locator(".order-move:visible").all_text_contents() == ["Mark shipped", "Refund"]
    await row.locator('.order-move[data-move="ship"]').click()
    await row.locator(".order-state", has_text="shipped").wait_for()

    async with site.db.session() as session:
        assert (await session.get(Order, order_id)).status is OrderStatus.shipped


async def test_admin_answers_a_quote_request_with_a_price_in_the_products_currency(site, new_context):
    buyer = await new_context()
    await sign_in(buyer, site, "buyer@livemall.example")
    (line,) = await _product_ids(site, "Mask Production Line")
    asked = await buyer.request.post(site.at("/api/quotes"), data={
        "product_id": int(line), "quantity": 2, "destination_country": "VN", "incoterm": "CIF",
        "note": "Delivery to Hai Phong <port>"})
    assert asked.status == 201, await asked.text()
    quote_id = (await asked.json())["id"]
    page, _ = await _admin_page(new_context, site)
    row = page.locator(f'#orders tr[data-quote-id="{quote_id}"]')
    assert "Delivery to Hai Phong <port>" in await row.text_content()
    form = row.locator(".quote-answer-form")

    await form.locator('input[name="unit_price"]').fill("-5")
    await form.locator('button[type="submit"]').click()
    error = form.locator('.field-error[data-for="unit_price"]')
    await error.filter(has_text="0 or more").wait_for()
    assert await form.locator('input[name="unit_price"]').get_attribute("aria-invalid") == "true"

    await form.locator('input[name="unit_price"]').fill("80,000.50")
    await form.locator('button[type="submit"]').click()
    await row.locator(".quote-state", has_text="answered").wait_for()
    assert await row.locator(".quote-price").text_content() == "$80,000.50"
    assert await error.text_content() == ""
    async with site.db.session() as session:
        from orders.models import Quote

        quote = await session.get(Quote, quote_id)
        assert (quote.unit_price, quote.currency) == (8_000_050, "USD")


# --- the catalog: suppliers, products, stock, packages, exhibitions ----------------------

async def _flash(page, text: str) -> None:
    """The note a catalog form leaves after its page reloads with the new row."""
    await page.locator("#admin-flash", has_text=text).wait_for()


async def test_admin_adds_a_supplier_and_a_product_restocks_it_and_prices_it_in_an_exhibition(site, new_context):
    from orders.models import Exhibition, ExhibitionProduct, Supplier

    page, context = await _admin_page(new_context, site, timezone_id="Asia/Seoul")
    supplier_form = page.locator("#supplier-form")
    await supplier_form.locator('input[name="name"]').fill("Geoje Oyster Cooperative")
    await supplier_form.locator('input[name="region"]').fill("Gyeongnam")
    await supplier_form.locator('button[type="submit"]').click()
    await _flash(page, "Added: Geoje Oyster Cooperative")
    assert "Geoje Oyster Cooperative" in await page.locator("#suppliers tbody").text_content()

    form = page.locator("#product-form")
    await form.locator('select[name="supplier_id"]').select_option(label="Geoje Oyster Cooperative")
    await form.locator('select[name="committee"]').select_option("seafood")
    await form.locator('input[name="name"]').fill("Geoje Rock Oysters 1kg")
    await form.locator('textarea[name="description"]').fill("Shucked <fresh> this morning")
    await form.locator('input[name="currency"]').fill("KRW")
    await form.locator('input[name="price"]').fill("32,000")
    await form.locator('input[name="stock"]').fill("5")
    await form.locator('button[type="submit"]').click()
    await _flash(page, "Geoje Rock Oysters 1kg")
    async with site.db.session() as session:
        product = await session.scalar(select(Product).where(Product.name == "Geoje Rock Oysters 1kg"))
        supplier = await session.get(Supplier, product.supplier_id)
    assert (product.price, product.currency, product.stock, product.moq, supplier.region) == (32000, "KRW", 5, 1, "Gyeongnam")

    row = page.locator(f'#products tr[data-product-id="{product.id}"]')
    await row.locator('input[name="restock"]').fill("20")
    await row.locator('button[type="submit"]').click()
    await row.locator(".change-status", has_text="Saved").wait_for()
    assert await row.locator(".product-stock").text_content() == "25"

    exhibition_form = page.locator("#exhibition-form")
    await exhibition_form.locator('input[name="title"]').fill("Geoje Oyster Festival")
    await exhibition_form.locator('input[name="partner"]').fill("Geoje City")
    await exhibition_form.locator('input[name="starts_at"]').fill("2020-01-01T09:00")
    await exhibition_form.locator('input[name="ends_at"]').fill("2099-12-31T18:00")
    line = exhibition_form.locator(".line-fields").nth(0)
    await line.locator('select[name="product_id"]').select_option(str(product.id))
    assert await line.locator(".line-currency").text_content() == "KRW"
    await line.locator('input[name="price"]').fill("25000")
    await exhibition_form.locator('button[type="submit"]').click()
    await _flash(page, "Added: Geoje Oyster Festival")
    async with site.db.session() as session:
        exhibition = await session.scalar(select(Exhibition).where(Exhibition.title == "Geoje Oyster Festival"))
        price = await session.scalar(select(ExhibitionProduct.price).where(ExhibitionProduct.exhibition_id == exhibition.id))
    assert exhibition.starts_at == datetime(2020, 1, 1, 0, 0, tzinfo=timezone.utc)  # 09:00 in Seoul
    assert exhibition.ends_at == datetime(2099, 12, 31, 9, 0, tzinfo=timezone.utc)
    assert price == 25000

    # A live show in that exhibition pins the oysters: viewers see the exhibition price,
    # the list price struck through and the restocked stock.
    await go_live_in_db(site)
    async with site.db.transaction() as session:
        show = await session.get(Show, 1)
        show.exhibition_id = exhibition.id
        show.pinned_product_id = product.id
    viewer = await open_page(await new_context(), site.at("/shows/1"))
    assert await viewer.locator("#pin-name").text_content() == "Geoje Rock Oysters 1kg"
    assert await viewer.get_by_test_id("price").text_content() == "₩25,000"
    assert await viewer.locator("#pin-list-price").text_content() == "₩32,000"
    assert await viewer.get_by_test_id("stock").text_content() == "25 left"


async def test_admin_redefines_a_package_with_components_and_quantities(site, new_context):
    page, _ = await _admin_page(new_context, site)
    (package, line, mask) = await _product_ids(
        site, "Mask Line + Filter Machine Package", "Mask Production Line", "KF94 Mask (box of 50)")
    form = page.locator("#package-form")
    await form.locator('select[name="package_id"]').select_option(package)
    first = form.locator(".line-fields").nth(0)
    await first.locator('select[name="product_id"]').select_option(line)
    await form.locator(".add-line").click()
    second = form.locator(".line-fields").nth(1)
    await second.locator('select[name="product_id"]').select_option(mask)
    await second.locator('input[name="quantity"]').fill("500")

    await form.locator('button[type="submit"]').click()

    await _flash(page, "Mask Line + Filter Machine Package")
    assert "500 × KF94 Mask (box of 50)" in await page.locator("#products").text_content()
    async with site.db.session() as session:
        from orders import catalog

        items = await catalog.package_items(session, int(package))
    assert sorted((p.name, q) for p, q in items) == [("KF94 Mask (box of 50)", 500), ("Mask Production Line", 1)]


async def test_a_component_error_lands_in_its_own_row(site, new_context):
    page, _ = await _admin_page(new_context, site)
    (package, mask) = await _product_ids(site, "Mask Line + Filter Machine Package", "KF94 Mask (box of 50)")
    form = page.locator("#package-form")
    await form.locator('select[name="package_id"]').select_option(package)
    await form.locator(".line-fields").nth(0).locator('select[name="product_id"]').select_option(mask)
    await form.locator(".add-line").click()
    second = form.locator(".line-fields").nth(1)
    await second.locator('select[name="product_id"]').select_option(mask)  # listed twice

    await form.locator('button[type="submit"]').click()

    await second.locator('.field-error[data-for="items.1.product_id"]', has_text="listed twice").wait_for()
    assert await form.locator(".line-fields").nth(0).locator(".field-error").first.text_content() == ""


async def test_bad_catalog_values_show_field_errors_where_they_belong(site, new_context):
    page, _ = await _admin_page(new_context, site)
    form = page.locator("#product-form")
    await form.locator('input[name="name"]').fill("Broken")
    await form.locator('input[name="currency"]').fill("USD")
    await form.locator('input[name="price"]').fill("-5")
    await form.locator('button[type="submit"]').click()
    error = form.locator('.field-error[data-for="price"]')
    await error.filter(has_text="0 or more").wait_for()
    assert await form.locator('input[name="price"]').get_attribute("aria-invalid") == "true"
    assert await form.locator('.field-error[data-for="name"]').text_content() == ""

    (tea,) = await _product_ids(site, "Jeju Organic Green Tea 100g")
    row = page.locator(f'#products tr[data-product-id="{tea}"]')
    await row.locator('input[name="restock"]').fill("-500")  # 120 in stock
    await row.locator('button[type="submit"]').click()
    await row.locator('.field-error[data-for="restock"]', has_text="Only 120 left in stock.").wait_for()

    exhibition = page.locator("#exhibition-form")
    await exhibition.locator('input[name="title"]').fill("Backwards fair")
    await exhibition.locator('input[name="partner"]').fill("Nowhere")
    await exhibition.locator('input[name="starts_at"]').fill("2031-05-02T10:00")
    await exhibition.locator('input[name="ends_at"]').fill("2031-05-01T10:00")
    await exhibition.locator('button[type="submit"]').click()
    await exhibition.locator('.field-error[data-for="ends_at"]', has_text="The end must come after the start.").wait_for()
    async with site.db.session() as session:
        assert await session.scalar(select(Product).where(Product.name == "Broken")) is None
        assert await session.scalar(select(Product.stock).where(Product.id == int(tea))) == 120


async def test_korean_admin_sees_the_catalog_forms_and_errors_in_korean(site, new_context):
    page, _ = await _admin_page(new_context, site, locale="ko-KR")
    form = page.locator("#product-form")
    assert await form.locator("h3").text_content() == "상품 추가"
    await form.locator('input[name="currency"]').fill("XYZ")
    await form.locator('input[name="name"]').fill("잘못된 상품")
    await form.locator('input[name="price"]').fill("1000")
    await form.locator('button[type="submit"]').click()
    await form.locator('.field-error[data-for="currency"]', has_text="영문 세 글자").wait_for()
