"""In real Chromium: a form on another port of the same host can no longer cancel a
signed-in buyer's order with the session cookie (issue 14, item 13), and the password
reset page takes a person from the e-mail's link to a new password (item 15)."""

from __future__ import annotations

import pytest
from aiohttp import web
from sqlalchemy import select

from orders.models import Order, OrderStatus, User
from tests.conftest import free_port
from tests.pages.conftest import browser, new_context, open_page, sign_in, site  # noqa: F401 - fixtures
from web.api_accounts import RESET_TOKENS

pytestmark = pytest.mark.asyncio(loop_scope="session")

BUYER = "buyer@livemall.example"


async def _attacker_page(target: str):
    """A page on another port of 127.0.0.1 whose form posts to `target` on load."""
    html = (f'<form id="f" method="post" action="{target}"><input name="x" value="1"></form>'
            '<script>document.getElementById("f").submit()</script>')

    async def attacker(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", attacker)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/"


async def test_a_form_on_another_port_cannot_cancel_an_order(site, new_context):
    context = await new_context()
    await sign_in(context, site, BUYER)
    placed = await context.request.post(site.at("/api/orders"), data={"product_id": 1, "quantity": 1},
                                        headers={"Idempotency-Key": "cross-port", "Origin": site.url})
    assert placed.status == 201, await placed.text()
    order_id = (await placed.json())["id"]

    runner, url = await _attacker_page(site.at(f"/api/orders/{order_id}/cancel"))
    try:
        page = await context.new_page()
        async with page.expect_response(lambda r: r.url.endswith("/cancel")) as answer:
            await page.goto(url)
        assert (await answer.value).status == 403
    finally:
        await runner.cleanup()
    async with site.db.session() as session:
        assert (await session.get(Order, order_id)).status is OrderStatus.pending


async def test_the_reset_page_asks_for_the_email_then_sets_the_password_from_the_link(site, new_context):
    context = await new_context()
    page = await open_page(context, site.at("/reset-password"))
    await page.fill("#reset-request-form input[name=email]", BUYER)
    await page.click("#reset-request-form button[type=submit]")
    await page.wait_for_selector("#reset-sent", state="visible")

    async with site.db.session() as session:
        user = await session.scalar(select(User).where(User.email == BUYER))
    token = site.app[RESET_TOKENS].issue(user.id, user.password_hash)  # what the e-mail's link carries
    page = await open_page(context, site.at(f"/reset-password#token={token}"))
    await page.fill("#reset-confirm-form input[name=new_password]", " cedar-window-58 ")
    await page.click("#reset-confirm-form button[type=submit]")
    await page.wait_for_selector("#reset-done", state="visible")
    assert "token" not in page.url

    signed_in = await context.request.post(site.at("/api/auth/login"),
                                           data={"email": BUYER, "password": " cedar-window-58 "})
    assert signed_in.status == 200


async def test_registering_with_a_common_password_says_why_in_the_pages_language(site, new_context):
    page = await open_page(await new_context(locale="ko-KR"), site.at("/register"))
    await page.fill('input[name="name"]', "김민준")
    await page.fill('input[name="email"]', "minjun@example.kr")
    await page.fill('input[name="password"]', "iloveyou1")
    await page.fill('input[name="country"]', "KR")
    await page.click('button[type="submit"]')
    error = page.locator('.field-error[data-for="password"]')
    await error.wait_for(state="visible")
    assert await error.text_content() == "너무 흔하거나 이메일 또는 이름과 같은 비밀번호입니다. 다른 비밀번호를 정하세요."
