"""The admin's audience chart (web/report_chart.py) in Chromium: drawn on the server as
SVG, each sale marked where its order was placed, every text in it escaped."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from orders.models import Order, OrderStatus, Product, Show, ShowStatus, ShowViewer, User
from tests.pages.conftest import open_page, sign_in
from web.report_chart import LEFT, PLOT_W, WIDTH

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOSTILE = '<img src=x onerror="window.pwned=1"></title><script>window.pwned=2</script> & "Tea"'


async def _ended_show_with_sales(site, product_name: str = "Jeju Organic Green Tea 100g",
                                 title: str | None = None) -> dict[str, int]:
    """Show 1 ran for an hour; viewers came at 0, 10 and 20 minutes; paid orders were
    placed at 15 and 45 minutes, a pending one at 30 (not a sale)."""
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    async with site.db.transaction() as session:
        values = dict(status=ShowStatus.ended, started_at=start, ended_at=start + timedelta(hours=1), peak_viewers=2)
        if title is not None:
            values["title"] = title
        await session.execute(update(Show).where(Show.id == 1).values(**values))
        product = await session.scalar(select(Product).where(Product.name == "Jeju Organic Green Tea 100g"))
        product.name = product_name
        buyer = await session.scalar(select(User).where(User.email == "buyer@livemall.example"))
        session.add_all(ShowViewer(show_id=1, viewer_key=f"k{m}", first_seen=start + timedelta(minutes=m))
                        for m in (0, 10, 20))
        orders = {}
        for minutes, status in ((15, OrderStatus.paid), (30, OrderStatus.pending), (45, OrderStatus.delivered)):
            order = Order(buyer_id=buyer.id, product_id=product.id, quantity=2, unit_price=1200, currency="USD",
                          total=2400, status=status, show_id=1, committee_id=product.committee_id,
                          created_at=start + timedelta(minutes=minutes))
            session.add(order)
            await session.flush()
            orders[minutes] = order.id
    return orders


async def _chart(new_context, site):
    context = await new_context()
    await sign_in(context, site, "admin@livemall.example")
    page = await open_page(context, site.at("/admin?report_show=1"))
    chart = page.get_by_test_id("audience-chart")
    await chart.wait_for()
    return page, chart


async def test_each_sale_is_marked_where_its_order_was_placed_on_the_show_s_timeline(site, new_context):
    orders = await _ended_show_with_sales(site)
    page, chart = await _chart(new_context, site)

    markers = chart.get_by_test_id("sale-marker")
    assert await markers.count() == 2  # the pending order is no sale
    expected = {orders[15]: LEFT + PLOT_W * 0.25, orders[45]: LEFT + PLOT_W * 0.75}
    box = await chart.bounding_box()
    scale = box["width"] / WIDTH
    for i in range(2):
        marker = markers.nth(i)
        order_id = int(await marker.get_attribute("data-order-id"))
        x = float(await marker.locator("line").get_attribute("x1"))
        assert x == pytest.approx(expected[order_id], abs=0.5)
        dot = await marker.locator("circle").bounding_box()  # where Chromium drew it
        assert dot["x"] + dot["width"] / 2 - box["x"] == pytest.approx(expected[order_id] * scale, abs=2)
    # The curve climbs to the three people who joined, a step at 10 and at 20 minutes.
    curve = await chart.get_by_test_id("audience-curve").get_attribute("d")
    assert curve.count("V") == 3
    assert "3 people joined; 2 sales." in await page.locator("#reports figcaption").text_content()


async def test_names_in_the_chart_are_text_not_markup(site, new_context):
    await _ended_show_with_sales(site, product_name=HOSTILE, title=HOSTILE)
    page, chart = await _chart(new_context, site)

    tooltip = await chart.get_by_test_id("sale-marker").first.locator("title").text_content()
    assert tooltip.startswith(f"2 × {HOSTILE}, $24.00, at 15:00")
    assert HOSTILE in await chart.locator("title#audience-chart-title").text_content()
    assert await page.locator("#reports img, #reports script, svg img, svg script").count() == 0
    assert await page.evaluate("window.pwned") is None
