"""Vouchers in Chromium (issue 17, item 3): a buyer claims the voucher pinned in the show
with one tap on the watch page, picks it at checkout and the total drops."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orders import coupons
from orders.models import Show, User, VoucherKind, utcnow
from tests.pages.conftest import open_page, sign_in, watch_page

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_claimed_voucher_applied_at_checkout_lowers_the_total(site, new_context):
    now = utcnow()
    async with site.db.transaction() as session:
        admin = await session.get(User, 1)
        voucher = await coupons.create_voucher(session, admin, coupons.VoucherTerms(
            kind=VoucherKind.amount, amount=300, currency="USD", total_limit=10, code="LIVE3",
            starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1)), now)
        await coupons.pin(session, await session.get(Show, 1), voucher.id, now)
    context = await new_context()
    await sign_in(context, site, "buyer@livemall.example")
    page = await watch_page(context, site)

    await page.get_by_test_id("voucher-title").filter(has_text="$3.00 off").wait_for()
    await page.get_by_test_id("voucher-claim").click()
    await page.get_by_test_id("voucher-status").filter(has_text="Claimed").wait_for()

    response = await context.request.post(site.at("/api/orders"), data={"product_id": 1, "quantity": 2},
                                          headers={"Idempotency-Key": "page-voucher-1"})
    assert response.status == 201, await response.text()
    order = await response.json()
    checkout = await open_page(context, site.at(f"/orders/{order['id']}/checkout"))
    assert await checkout.get_by_test_id("total").text_content() == "$30.00"
    await checkout.get_by_test_id("coupon-wallet").select_option(str(voucher.id))
    await checkout.get_by_test_id("coupon-apply").click()

    await checkout.get_by_test_id("total").filter(has_text="$27.00").wait_for()
    assert "LIVE3" in await checkout.get_by_test_id("coupon-discount").text_content()


async def test_my_orders_shows_the_points_balance_and_its_history(site, new_context):
    from orders import mileage

    now = utcnow()
    async with site.db.transaction() as session:
        await mileage._touch(session, [4], now)  # the buyer earned 250 points earlier
        await mileage._entry(session, 4, "earn", 250, "page-earn", now, expires_at=now + timedelta(days=30))
    context = await new_context()
    await sign_in(context, site, "buyer@livemall.example")

    page = await open_page(context, site.at("/orders"))

    await page.get_by_test_id("mileage-balance").filter(has_text="250 points").wait_for()
    assert "+250" in await page.get_by_test_id("mileage-history").text_content()


async def test_the_host_makes_and_pins_a_voucher_in_the_studio_and_viewers_see_it(site, new_context):
    from tests.pages.conftest import studio_page

    host = await new_context()
    await sign_in(host, site, "host@livemall.example")
    viewer = await new_context()
    watch = await watch_page(viewer, site)
    studio = await studio_page(host, site)

    form = studio.locator("#voucher-make")
    await form.locator('[name="value"]').fill("10")
    await form.locator("button[type=submit]").click()
    await studio.get_by_test_id("voucher-make-status").filter(has_text="made").wait_for()
    await studio.get_by_test_id("voucher-list").get_by_role("button", name="Pin").click()

    await watch.get_by_test_id("voucher-title").filter(has_text="10% off").wait_for()
    assert not await watch.get_by_test_id("voucher-claim").is_hidden()
