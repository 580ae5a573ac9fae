"""From Buy to a parcel in Chromium (issue 15's whole path): a buyer in Russia pays by
card, a buyer in Vietnam by invoice; each goes Buy → ship-to address → pay → paid →
shipped → tracking shown on their order page, and receives the order's e-mails, in
their language, from a real SMTP server (aiosmtpd) on loopback.

The card processor is the Stripe-shaped local server (tests/orders/stripe_server.py),
which the app reaches through the official `stripe` library. Stripe's own card page
(checkout.stripe.com) is the only thing stood in for in the browser: the test "pays"
there by completing the session, delivers the webhook Stripe would send (signed with
the real scheme) and follows Stripe's redirect back to the order.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import select

from orders.db import Database
from orders.models import Order, Product, Show
from tests.conftest import free_port, fresh_sqlite, test_settings
from tests.orders.stripe_server import StripeServer
from tests.orders.test_notifications import Inbox
from tests.orders.test_stripe_payments import SECRET_KEY, WEBHOOK_SECRET, signature
from tests.pages.conftest import PASSWORD, Site, go_live_in_db, open_page, sign_in
from web.pages import load_translations

pytestmark = pytest.mark.asyncio(loop_scope="session")

TRACKING = {"carrier": "DHL", "tracking_number": "1234567890"}


@pytest_asyncio.fixture(loop_scope="session")
async def stripe_api() -> AsyncIterator[StripeServer]:
    server = StripeServer(SECRET_KEY)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server.base_url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server.release()
        await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="session")
async def inbox() -> AsyncIterator[Inbox]:
    box = Inbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def shop(sqlite_template: Path, tmp_path: Path, stripe_api: StripeServer, inbox: Inbox) -> AsyncIterator[Site]:
    """The whole app with Stripe and SMTP configured, on a free port that is also its
    public URL (where Stripe sends the buyer back)."""
    from orders.demo import load_demo
    from web.app import create_app
    from web.appkeys import DB

    url = fresh_sqlite(sqlite_template, tmp_path)
    database = Database(url)
    async with database.transaction() as session:
        await load_demo(session)
        show = await session.get(Show, 1)
        show.pinned_product_id = await session.scalar(select(Product.id).where(Product.name == "Yuja Honey Tea 1kg"))
    await database.close()
    port = free_port()
    settings = test_settings(
        url, recordings_dir=tmp_path / "recordings", public_url=f"http://127.0.0.1:{port}",
        stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=stripe_api.base_url,
        smtp_host="127.0.0.1", smtp_port=inbox.port, mail_poll_interval=0.05, mail_retry_base=0.1, mail_retry_max=0.5,
    )
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Site(f"http://127.0.0.1:{port}", app, app[DB])
    finally:
        await runner.cleanup()


async def register(new_context, shop: Site, *, name: str, email: str, country: str, locale: str, zone: str):
    """A new buyer who signs up on a page in their language (their e-mails follow it)."""
    context = await new_context(locale=locale, timezone_id=zone)
    response = await context.request.post(
        shop.at("/api/auth/register"), headers={"Accept-Language": locale},
        data={"email": email, "password": PASSWORD + "-e2e", "name": name, "country": country, "role": "buyer"},
    )
    assert response.status == 201, await response.text()
    await sign_in(context, shop, email, PASSWORD + "-e2e")
    return context


async def buy_on_the_watch_page(context, shop: Site):
    """Buy the pinned product on the live show's page, then follow the order's link to
    its checkout."""
    page = await open_page(context, shop.at("/shows/1"))
    await page.click("#buy-button")
    await page.click("#confirm-buy")
    await page.get_by_test_id("checkout-link").click()
    await page.wait_for_url("**/orders/*/checkout")
    return page, int(page.url.split("/orders/")[1].split("/")[0])


async def add_address(page, *, name: str, country: str, line1: str, city: str, postal_code: str, phone: str) -> None:
    form = page.locator("#address-form")
    await form.locator('[name="name"]').fill(name)
    await form.locator('[name="country"]').select_option(country)
    await form.locator('[name="line1"]').fill(line1)
    await form.locator('[name="city"]').fill(city)
    await form.locator('[name="postal_code"]').fill(postal_code)
    await form.locator('[name="phone"]').fill(phone)
    await form.locator("button[type=submit]").click()
    await page.get_by_test_id("pay").and_(page.locator(":enabled")).wait_for()


async def as_admin(shop: Site, method: str, path: str, body: dict | None = None) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.post(shop.at("/api/auth/login"),
                             json={"email": "admin@livemall.example", "password": PASSWORD}) as response:
            token = (await response.json())["token"]
        async with http.request(method, shop.at(path), json=body or {},
                                headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def mails_for(inbox: Inbox, address: str, count: int) -> list:
    mails = []
    while len(mails) < count:
        mail = await inbox.next(timeout=20)
        if mail["To"] == address:
            mails.append(mail)
    return mails


def subjects(locale: str, order_id: int) -> list[str]:
    catalog = load_translations(locale)
    return [catalog.gettext(text) % {"id": order_id} for text in (
        "Order #%(id)s is reserved for you", "Payment received for order #%(id)s", "Order #%(id)s has shipped")]


async def see_it_shipped(context, shop: Site, order_id: int) -> None:
    page = await open_page(context, shop.at(f"/orders/{order_id}"))
    steps = await page.get_by_test_id("timeline").locator(".step.done").evaluate_all(
        "steps => steps.map(step => step.dataset.step)")
    assert steps == ["placed", "paid", "shipped"]
    link = page.get_by_test_id("tracking-link")
    assert await link.text_content() == TRACKING["tracking_number"]
    assert "tracking-id=1234567890" in await link.get_attribute("href")


async def test_a_buyer_in_russia_pays_by_card_and_follows_the_parcel(shop, new_context, stripe_api, inbox):
    await go_live_in_db(shop)
    email = "anna@example.ru"
    buyer = await register(new_context, shop, name="Анна Петрова", email=email, country="RU",
                           locale="ru-RU", zone="Europe/Moscow")
    page, order_id = await buy_on_the_watch_page(buyer, shop)
    await add_address(page, name="Анна Петрова", country="RU", line1="ул. Тверская, д. 7, кв. 12",
                      city="Москва", postal_code="125009", phone="+7 495 123-45-67")

    # Stripe's card page: the buyer pays there, Stripe completes the session, sends the
    # signed webhook and sends the buyer back to the order.
    card_page = {}

    async def stripe_checkout(route):
        session_id = route.request.url.rsplit("/", 1)[1]
        card_page["session"] = stripe_api.sessions[session_id]
        await route.fulfill(status=200, content_type="text/html",
                            body="<!doctype html><title>Stripe</title><button id=pay>Pay</button>")

    await buyer.route("https://checkout.stripe.com/**", stripe_checkout)
    await page.get_by_test_id("provider").select_option("stripe")
    await page.get_by_test_id("pay").click()
    await page.wait_for_url("https://checkout.stripe.com/c/pay/*")
    session = card_page["session"]
    async with shop.db.session() as db:
        total = (await db.get(Order, order_id)).total  # the items, and shipping to Moscow
    assert (session["amount_total"], session["currency"], session["client_reference_id"]) == (
        total, "usd", str(order_id))
    event = json.dumps(stripe_api.event("checkout.session.completed", stripe_api.pay(session["id"]))).encode()
    async with aiohttp.ClientSession() as http:
        async with http.post(shop.at("/api/payments/stripe/webhook"), data=event, headers={
                "Content-Type": "application/json", "Stripe-Signature": signature(event)}) as response:
            assert response.status == 200, await response.text()
    await page.goto(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]))
    await page.get_by_test_id("payment-result").and_(page.locator('[data-result="paid"]')).wait_for()

    await as_admin(shop, "POST", f"/api/orders/{order_id}/ship", TRACKING)
    await see_it_shipped(buyer, shop, order_id)

    mails = await mails_for(inbox, email, 3)
    assert [m["Subject"] for m in mails] == subjects("ru", order_id)
    assert TRACKING["tracking_number"] in mails[2].get_content()


async def test_a_buyer_in_vietnam_pays_by_invoice_and_follows_the_parcel(shop, new_context, inbox):
    await go_live_in_db(shop)
    email = "an@example.vn"
    buyer = await register(new_context, shop, name="Nguyễn Văn An", email=email, country="VN",
                           locale="vi-VN", zone="Asia/Ho_Chi_Minh")
    page, order_id = await buy_on_the_watch_page(buyer, shop)
    await add_address(page, name="Nguyễn Văn An", country="VN", line1="12 Lý Thái Tổ", city="Hà Nội",
                      postal_code="100000", phone="+84 24 3825 1234")

    await page.get_by_test_id("provider").select_option("invoice")
    await page.get_by_test_id("pay").click()
    await page.get_by_test_id("payment").filter(has_text=f"INV-{order_id:08d}").wait_for()
    await as_admin(shop, "POST", f"/api/orders/{order_id}/confirm-payment")  # the bank transfer came
    await as_admin(shop, "POST", f"/api/orders/{order_id}/ship", TRACKING)
    await see_it_shipped(buyer, shop, order_id)

    mails = await mails_for(inbox, email, 3)
    assert [m["Subject"] for m in mails] == subjects("vi", order_id)
    assert TRACKING["tracking_number"] in mails[2].get_content()
