"""My orders, an order's page and My quotes (issue 15, item 5) in Chromium, the studio's
quotes panel, the admin's orders and quotes tables on a phone, and the co-view owner's
credited order following its payment live (item 8); plus `GET /api/quotes?show_id=`."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from orders.models import Order, Product, Quote, ShowViewer, User
from tests.pages.conftest import DESKTOP, PHONE, go_live_in_db, open_page, sign_in, studio_page, watch_page

pytestmark = pytest.mark.asyncio(loop_scope="session")

MOSCOW = {"name": "Анна Петрова", "line1": "ул. Тверская, д. 7, кв. 12", "city": "Москва", "postal_code": "125009",
          "country": "RU", "phone": "+7 495 123-45-67"}
HOSTILE = '<img src=x onerror="window.pwned=1">'


async def person(new_context, site, email: str, **options):
    context = await new_context(**options)
    await sign_in(context, site, email)
    return context


async def user_id(site, email: str) -> int:
    async with site.db.session() as session:
        return await session.scalar(select(User.id).where(User.email == email))


async def product_id(site, name: str) -> int:
    async with site.db.session() as session:
        return await session.scalar(select(Product.id).where(Product.name == name))


async def watched(site, email: str, show_id: int = 1) -> None:
    """The audience ledger's row: the user watched the show (orders and quotes may name it)."""
    uid = await user_id(site, email)
    async with site.db.transaction() as session:
        session.add(ShowViewer(show_id=show_id, viewer_key=f"u{uid}", user_id=uid))


async def post(context, site, path: str, body: dict | None = None, status: int = 200, **options) -> dict:
    response = await context.request.post(site.at(path), data=body, **options)
    assert response.status == status, await response.text()
    return await response.json()


async def place(context, site, key: str, product: int = 1, quantity: int = 1, **extra) -> dict:
    return await post(context, site, "/api/orders", {"product_id": product, "quantity": quantity, **extra}, 201,
                      headers={"Idempotency-Key": key})


async def test_a_buyer_sees_their_orders_with_paid_and_shipped_tracking_and_cancels_a_pending_one(site, new_context):
    buyer = await person(new_context, site, "buyer@livemall.example", timezone_id="Asia/Shanghai")
    member = await person(new_context, site, "member@livemall.example")
    admin = await person(new_context, site, "admin@livemall.example")
    shipped = await place(buyer, site, "shipped")
    address = await post(buyer, site, "/api/addresses", MOSCOW, 201)
    await post(buyer, site, f"/api/orders/{shipped['id']}/checkout", {"address_id": address["id"]})
    await post(admin, site, f"/api/orders/{shipped['id']}/confirm-payment")
    await post(admin, site, f"/api/orders/{shipped['id']}/ship", {"carrier": "DHL", "tracking_number": "1234567890"})
    others = await place(member, site, "someone-else")
    pending = await place(buyer, site, "pending", quantity=2)

    page = await open_page(buyer, site.at("/orders"))
    listed = await page.locator(".order-card").evaluate_all("cards => cards.map(c => Number(c.dataset.orderId))")
    assert listed == [pending["id"], shipped["id"]]
    assert others["id"] not in (pending["id"], shipped["id"])
    card = page.locator(f'.order-card[data-order-id="{shipped["id"]}"]')
    assert await card.get_by_test_id("order-status").text_content() == "shipped"
    steps = "steps => steps.map(step => step.dataset.step)"
    assert await card.locator(".step.done").evaluate_all(steps) == ["placed", "paid", "shipped"]
    assert await card.locator('.step[data-step="delivered"]').get_attribute("class") == "step todo"
    link = card.get_by_test_id("tracking-link")
    assert await link.text_content() == "1234567890"
    assert await link.get_attribute("href") == ("https://www.dhl.com/global-en/home/tracking/tracking-express.html"
                                                "?submit=1&tracking-id=1234567890")
    # Times are rewritten in the viewer's zone (Shanghai, UTC+8) from the UTC the server wrote.
    paid_time = card.locator('.step[data-step="paid"] time')
    async with site.db.session() as session:
        paid_at = (await session.get(Order, shipped["id"])).paid_at
    assert await paid_time.get_attribute("title") != "" and "UTC" not in await paid_time.text_content()
    local = paid_at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert f"{local.hour % 12 or 12}:{local.minute:02d}" in await paid_time.text_content()
    assert await card.get_by_test_id("pay-now").count() == 0

    pending_card = page.locator(f'.order-card[data-order-id="{pending["id"]}"]')
    assert await pending_card.get_by_test_id("pay-now").get_attribute("href") == f"/orders/{pending['id']}/checkout"
    await pending_card.get_by_test_id("cancel-order").click()
    await pending_card.get_by_test_id("confirm-cancel").click()
    await page.locator(f'.order-card[data-order-id="{pending["id"]}"][data-status="cancelled"]').wait_for()
    assert await pending_card.locator(".step").evaluate_all(steps) == ["placed", "cancelled"]
    assert await pending_card.locator(".step time").count() == 2
    assert await pending_card.get_by_test_id("cancel-order").count() == 0
    async with site.db.session() as session:
        cancelled = await session.get(Order, pending["id"])
        assert cancelled.status.value == "cancelled" and cancelled.cancelled_at is not None
        assert (await session.get(Product, 1)).stock == 120 - 2  # the cancelled two are back on sale

    # The order's own page, as the card processor's return reaches it.
    order = await open_page(buyer, site.at(f"/orders/{shipped['id']}?payment=success&session_id=cs_test_1"))
    assert await order.get_by_test_id("payment-result").get_attribute("data-result") == "paid"
    ship_to = (await order.get_by_test_id("ship-to").inner_text()).splitlines()
    assert ship_to[-3:] == ["Москва 125009", "Russia", "+74951234567"]  # the country in the page's language
    assert await order.get_by_test_id("total").text_content() == "$29.00"  # $15.00 + $14.00 to Russia
    assert await order.get_by_test_id("tracking-link").count() == 1


async def test_back_from_the_card_processor_the_order_page_waits_for_the_payment_and_shows_it(site, new_context):
    buyer = await person(new_context, site, "buyer@livemall.example", locale="ru-RU")
    order = await place(buyer, site, "card")
    page = await open_page(buyer, site.at(f"/orders/{order['id']}?payment=success&session_id=cs_test_2"))
    result = page.get_by_test_id("payment-result")
    assert await result.get_attribute("data-result") == "confirming"
    assert await page.get_by_test_id("pay-now").count() == 1
    admin = await person(new_context, site, "admin@livemall.example")
    await post(admin, site, f"/api/orders/{order['id']}/confirm-payment")  # as the webhook would
    await page.locator('[data-testid="payment-result"][data-result="paid"]').wait_for()
    assert await result.text_content() == "Оплата получена. Спасибо!"
    assert await page.locator('.step.done[data-step="paid"] .step-name').text_content() == "Оплачен"
    assert await page.get_by_test_id("pay-now").count() == 0


async def test_a_buyer_cannot_open_another_buyers_order(site, new_context):
    member = await person(new_context, site, "member@livemall.example")
    buyer = await person(new_context, site, "buyer@livemall.example")
    theirs = await place(member, site, "members-own")
    response = await buyer.request.get(site.at(f"/orders/{theirs['id']}"))
    assert response.status == 404
    assert "Иван" not in await response.text()
    assert (await buyer.request.get(site.at("/orders/999999"))).status == 404
    assert (await buyer.request.get(site.at("/orders/x1"))).status == 404
    visitor = await new_context()
    response = await visitor.request.get(site.at(f"/orders/{theirs['id']}"), max_redirects=0)
    assert response.status == 303 and response.headers["location"] == f"/login?next=/orders/{theirs['id']}"


async def test_a_quote_answered_in_the_studio_is_accepted_on_my_quotes_and_links_to_its_order(site, new_context):
    await watched(site, "buyer@livemall.example")
    buyer = await person(new_context, site, "buyer@livemall.example")
    line = await product_id(site, "Mask Production Line")
    asked = await post(buyer, site, "/api/quotes", {"product_id": line, "quantity": 1, "destination_country": "VN",
                                                    "incoterm": "CIF", "note": HOSTILE, "show_id": 1}, 201)

    host = await person(new_context, site, "host@livemall.example")
    studio = await studio_page(host, site)
    item = studio.locator(f'#studio-quotes li[data-quote-id="{asked["id"]}"]')
    assert await item.locator(".quote-note").text_content() == HOSTILE
    await item.locator('input[name="unit_price"]').fill("20000")  # below half the list price ($85,000): admins only
    await item.locator('input[name="valid_days"]').fill("7")
    await item.locator("button[type=submit]").click()
    await item.locator('.field-error[data-for="unit_price"]', has_text="$42,500.00").wait_for()
    await item.locator('input[name="unit_price"]').fill("80,000")
    await item.locator("button[type=submit]").click()
    await item.get_by_test_id("quote-offer").filter(has_text="$80,000.00 per unit").wait_for()

    page = await open_page(buyer, site.at("/quotes"))
    card = page.locator(f'.quote-card[data-quote-id="{asked["id"]}"]')
    assert await card.get_by_test_id("quote-status").text_content() == "answered"
    assert await card.get_by_test_id("unit-price").text_content() == "$80,000.00"
    assert await card.get_by_test_id("quote-total").text_content() == "$80,000.00"
    assert re.search(r"\d{4}", await card.get_by_test_id("valid-until").text_content())
    assert await card.locator(".quote-note").text_content() == HOSTILE
    await card.get_by_test_id("accept-quote").click()
    link = card.get_by_test_id("quote-order")
    await link.wait_for()
    assert await card.get_by_test_id("quote-status").text_content() == "accepted"
    assert await card.get_by_test_id("decline-quote").count() == 0
    async with site.db.session() as session:
        order_id = (await session.get(Quote, asked["id"])).order_id
    assert await link.get_attribute("href") == f"/orders/{order_id}"
    await link.click()
    await page.wait_for_url(site.at(f"/orders/{order_id}"))
    assert await page.get_by_test_id("order-status").text_content() == "confirmed, awaiting payment"
    assert await page.get_by_test_id("pay-now").get_attribute("href") == f"/orders/{order_id}/checkout"
    assert await page.evaluate("window.pwned") is None


async def test_the_admin_orders_and_quotes_tables_fit_a_phone_and_a_desktop(site, new_context):
    await watched(site, "buyer@livemall.example")
    buyer = await person(new_context, site, "buyer@livemall.example")
    for n in range(3):
        await place(buyer, site, f"table-{n}", quantity=n + 1)
    line = await product_id(site, "Mask Production Line")
    await post(buyer, site, "/api/quotes", {"product_id": line, "quantity": 2, "destination_country": "VN",
                                            "incoterm": "DDP", "note": "Please include installation and training " * 8,
                                            "show_id": 1}, 201)
    admin = await person(new_context, site, "admin@livemall.example", viewport=PHONE, is_mobile=True, has_touch=True)
    page = await open_page(admin, site.at("/admin#orders"))
    await page.locator("#orders .quote-answer-form").first.wait_for()
    # On a phone each row is a card, and at 1280 px both tables are whole: neither the
    # page nor the tables' own boxes scroll sideways.
    overflow = "boxes => boxes.map(b => b.scrollWidth - b.clientWidth)"
    for viewport in (PHONE, DESKTOP):
        await page.set_viewport_size(viewport)
        assert await page.locator("#orders .table-wrap").evaluate_all(overflow) == [0, 0], viewport
        assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    assert await page.locator('#orders tr[data-order-id] td[data-label="Total"]').count() == 3


async def test_the_coview_owner_sees_a_credited_order_become_paid_without_a_reload(site, new_context):
    from rooms.coview import create_room

    await go_live_in_db(site)
    await watched(site, "buyer@livemall.example")
    owner_id = await user_id(site, "member@livemall.example")
    async with site.db.transaction() as session:
        code = (await create_room(session, show_id=1, owner=await session.get(User, owner_id),
                                  at=datetime.now(timezone.utc), ttl=3600, member_limit=50)).code
    member = await watch_page(await person(new_context, site, "member@livemall.example"), site, f"/coview/{code}")
    buyer = await person(new_context, site, "buyer@livemall.example")
    order = await place(buyer, site, "credited", coview=code)
    credited = member.get_by_test_id("credited").locator(f'li[data-order-id="{order["id"]}"]')
    await credited.filter(has_text="awaiting payment").wait_for()

    admin = await person(new_context, site, "admin@livemall.example")
    await post(admin, site, f"/api/orders/{order['id']}/confirm-payment")
    await credited.locator(".chip", has_text="paid").wait_for()
    assert await credited.locator(".commission").count() == 1


async def test_get_quotes_by_show_keeps_each_quote_to_its_buyer_the_shows_host_and_admins(site, new_context):
    from orders.models import Role, Show

    await watched(site, "buyer@livemall.example")
    buyer = await person(new_context, site, "buyer@livemall.example")
    line = await product_id(site, "Mask Production Line")
    in_show = await post(buyer, site, "/api/quotes", {"product_id": line, "quantity": 1, "destination_country": "VN",
                                                      "incoterm": "EXW", "show_id": 1}, 201)
    outside = await post(buyer, site, "/api/quotes", {"product_id": line, "quantity": 1, "destination_country": "VN",
                                                      "incoterm": "EXW"}, 201)
    async with site.db.transaction() as session:  # another host's show, with nothing asked in it
        other = await session.scalar(select(User).where(User.email == "member@livemall.example"))
        other.role = Role.host
        session.add(Show(title="Other show", host_id=other.id, scheduled_at=datetime.now(timezone.utc)))

    async def ids(context, query: str = "?show_id=1", status: int = 200) -> list[int] | dict:
        response = await context.request.get(site.at(f"/api/quotes{query}"))
        assert response.status == status, await response.text()
        body = await response.json()
        return [q["id"] for q in body] if status == 200 else body

    host = await person(new_context, site, "host@livemall.example")
    admin = await person(new_context, site, "admin@livemall.example")
    other_host = await person(new_context, site, "member@livemall.example")
    assert await ids(host) == [in_show["id"]]
    assert await ids(admin) == [in_show["id"]]
    assert await ids(buyer) == [in_show["id"]]
    assert await ids(buyer, "") == [outside["id"], in_show["id"]]
    assert await ids(other_host) == []  # not their show: nothing, as without the filter
    assert await ids(host, "?show_id=2") == []
    assert (await ids(host, "?show_id=abc", 422))["field"] == "show_id"
