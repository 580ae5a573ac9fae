"""Issue 15, item 8, in Chromium: the order line stays with its product's card, the
schedule follows a show going live, an ended show says nobody is watching."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone

import pytest
import socketio
from sqlalchemy import select, update

from orders import shows
from orders.models import Product, Show, ShowStatus
from tests.pages.conftest import PASSWORD, open_page, sign_in, watch_page

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _product_id(site, name: str) -> int:
    async with site.db.session() as session:
        return await session.scalar(select(Product.id).where(Product.name == name))


async def _host_socket(site, new_context) -> socketio.AsyncClient:
    """The host's controls, as the studio sends them (a real Socket.IO client)."""
    context = await new_context()
    response = await context.request.post(site.at("/api/auth/login"),
                                          data={"email": "host@livemall.example", "password": PASSWORD})
    token = (await response.json())["token"]
    client = socketio.AsyncClient(reconnection=False)
    joined = asyncio.get_running_loop().create_future()
    client.on("state", lambda data: joined.done() or joined.set_result(True))
    await client.connect(site.url, auth={"show": 1, "token": token}, transports=["websocket"], wait_timeout=10)
    await asyncio.wait_for(joined, 10)
    return client


async def _pin(host: socketio.AsyncClient, product_id: int) -> None:
    reply = await host.call("pin", {"product_id": product_id}, timeout=10)
    assert reply["ok"], reply


async def test_an_order_s_news_stays_under_its_own_product_s_card(site, new_context):
    async with site.db.transaction() as session:
        await shows.mark_live(session, 1, datetime.now(timezone.utc), None)
    mask, snail = await _product_id(site, "KF94 Mask (box of 50)"), await _product_id(site, "Snail Mucin Essence 100ml")
    host = await _host_socket(site, new_context)
    try:
        context = await new_context()
        await sign_in(context, site, "buyer@livemall.example")
        buyer = await watch_page(context, site)
        await _pin(host, mask)
        await buyer.locator("#pin-name", has_text="KF94 Mask").wait_for()
        await buyer.click("#buy-button")
        await buyer.click("#confirm-buy")
        status = buyer.get_by_test_id("order-status")
        await status.filter(has_text="awaiting payment").wait_for()
        order_id = int(re.search(r"#(\d+)", await status.text_content()).group(1))

        await _pin(host, snail)
        await buyer.locator("#pin-name", has_text="Snail Mucin").wait_for()
        admin = await new_context()
        await sign_in(admin, site, "admin@livemall.example")
        paid = await admin.request.post(site.at(f"/api/orders/{order_id}/confirm-payment"))
        assert paid.status == 200, await paid.text()
        # The chat is sent after the payment's `order` event: once it shows, that event was handled.
        assert (await host.call("chat", {"text": "payment noted"}, timeout=10))["ok"]
        await buyer.locator("#chat li .text", has_text="payment noted").wait_for()

        assert await status.text_content() == ""  # not under the essence's card

        await _pin(host, mask)  # the mask is back, and with it its order's news
        await status.filter(has_text=f"Order #{order_id}").filter(has_text="paid").wait_for()
    finally:
        await host.disconnect()


async def test_the_schedule_shows_a_show_going_live_without_a_reload(site, new_context):
    context = await new_context()
    await context.clock.install()
    page = await open_page(context, site.at("/"))
    card = page.locator('#upcoming .show-card[data-show-id="1"]')
    await card.wait_for()

    async with site.db.transaction() as session:
        await shows.mark_live(session, 1, datetime.now(timezone.utc), None)
    await page.clock.run_for(21_000)  # the page's poll of GET /api/shows, every 20 s

    await page.locator('#live .show-card[data-show-id="1"]').wait_for()
    assert await page.get_by_test_id("live-badge").count() >= 1


async def test_an_ended_show_does_not_say_people_are_watching(site, new_context):
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    async with site.db.transaction() as session:
        await session.execute(update(Show).where(Show.id == 1).values(
            status=ShowStatus.ended, started_at=start, ended_at=start + timedelta(minutes=30)))
    first = await watch_page(await new_context(), site)
    await watch_page(await new_context(), site)  # a second reader of the page

    counter = first.get_by_test_id("viewers")
    assert await counter.is_hidden()
    assert "watching" not in (await counter.text_content() or "")
