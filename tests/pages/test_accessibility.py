"""Accessibility (issue 16, item 6) and forms that fit the world (item 5) in Chromium.

Every page is checked with axe-core (the copy `axe-playwright-python` bundles) and must
have no serious or critical violation; the watch page is used with the keyboard alone;
the registration's country list speaks the page's language and sends the ISO code; a
success message is a polite status, not an error.

The axe runs share one app (its demo data arranged once: a live show with a pinned
product, an ended show with a recording, a co-view room, an order and a quote) and one
context per person, so a dozen pages cost one start-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import select

from orders.db import Database
from orders.models import Product, Role, Show, ShowStatus, User
from tests.conftest import free_port, fresh_sqlite, missing_service, test_settings
from tests.pages.conftest import DESKTOP, PHONE, Site, sign_in

pytestmark = pytest.mark.asyncio(loop_scope="session")

BLOCKING = ("serious", "critical")


@dataclass
class World:
    site: Site
    people: dict  # "anonymous", "buyer", "admin" -> a browser context
    order_id: int
    coview_code: str
    replay_show_id: int
    errors: list[str]  # uncaught script errors of any page opened here


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(browser, sqlite_template, tmp_path_factory) -> AsyncIterator[World]:
    from orders import shows
    from orders.demo import load_demo
    from rooms.coview import create_room
    from tests.pages.test_e2e import _write_recording
    from web.app import create_app
    from web.appkeys import DB

    scratch = tmp_path_factory.mktemp("a11y")
    url = fresh_sqlite(sqlite_template, scratch)
    database = Database(url)
    async with database.transaction() as session:
        await load_demo(session)
    await database.close()
    app = create_app(test_settings(url, recordings_dir=scratch / "recordings"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    site = Site(f"http://127.0.0.1:{port}", app, app[DB])

    recording = scratch / "replay.webm"
    _write_recording(recording, seconds=1)
    now = datetime.now(timezone.utc)
    async with site.db.transaction() as session:
        show = await session.get(Show, 1)
        await shows.mark_live(session, show.id, now, None)
        show.pinned_product_id = await session.scalar(select(Product.id).where(Product.name == "KF94 Mask (box of 50)"))
        host = await session.scalar(select(User).where(User.role == Role.host))
        member = await session.scalar(select(User).where(User.role == Role.member))
        replay = Show(title="Jeju teas, recorded", host_id=host.id, scheduled_at=now - timedelta(days=1),
                      status=ShowStatus.ended, started_at=now - timedelta(days=1),
                      ended_at=now - timedelta(days=1) + timedelta(seconds=1), recording_path=str(recording))
        session.add(replay)
        await session.flush()
        replay_id = replay.id
        code = (await create_room(session, show_id=1, owner=member, at=now, ttl=3600, member_limit=50)).code

    errors: list[str] = []
    people = {}
    for who, email in (("anonymous", None), ("buyer", "buyer@livemall.example"), ("admin", "admin@livemall.example")):
        context = await browser.new_context(locale="en-US", timezone_id="UTC", viewport=DESKTOP)
        context.set_default_timeout(15_000)
        context.on("page", lambda page: page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}")))
        if email:
            await sign_in(context, site, email)
        people[who] = context
    buyer = people["buyer"]
    placed = await buyer.request.post(site.at("/api/orders"), data={"product_id": 1, "quantity": 1},
                                      headers={"Idempotency-Key": "a11y-checkout"})
    assert placed.status == 201, await placed.text()
    async with site.db.session() as session:
        line = await session.scalar(select(Product.id).where(Product.name == "Mask Production Line"))
    asked = await buyer.request.post(site.at("/api/quotes"), data={
        "product_id": line, "quantity": 2, "destination_country": "VN", "incoterm": "CIF", "note": "To Hai Phong"})
    assert asked.status in (200, 201), await asked.text()
    try:
        yield World(site, people, (await placed.json())["id"], code, replay_id, errors)
    finally:
        for context in people.values():
            await context.close()
        await runner.cleanup()


# page name -> (who opens it, path (formatted with the world), an element that says the page is ready)
PAGES = {
    "schedule": ("buyer", "/", "#live .show-card"),
    "login": ("anonymous", "/login", "#login-form"),
    "register": ("anonymous", "/register", "#register-form"),
    "reset-password": ("anonymous", "/reset-password", "#reset-request-form"),
    "watch": ("buyer", "/shows/1", '#watch[data-connected="true"] #buy-form:not([hidden])'),
    "watch-phone": ("buyer", "/shows/1", '#watch[data-connected="true"] #buy-form:not([hidden])'),
    "watch-signed-out": ("anonymous", "/shows/1", '#watch[data-connected="true"]'),
    "coview": ("buyer", "/coview/{w.coview_code}", '#watch[data-connected="true"]'),
    "coview-phone": ("buyer", "/coview/{w.coview_code}", '#watch[data-connected="true"]'),
    "replay": ("anonymous", "/shows/{w.replay_show_id}", "#video[src]"),
    "studio": ("admin", "/studio/1", '#studio[data-connected="true"]'),
    "admin": ("admin", "/admin", "#show-form"),
    "checkout": ("buyer", "/orders/{w.order_id}/checkout", "#address-form"),
    "my-orders": ("buyer", "/orders", "main h1"),
    "order": ("buyer", "/orders/{w.order_id}", "main h1"),
    "my-quotes": ("buyer", "/quotes", "main h1"),
    "error": ("anonymous", "/shows/999", "main h1"),
}


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:8]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node.get('failureSummary', '').splitlines()[-1:]}")
    return "\n".join(lines)


async def assert_no_blocking_violation(page, name: str, context: str | None = None) -> None:
    """Runs axe-core on the page (or the part `context` selects), prints whatever it
    finds and fails on a serious or critical violation."""
    try:
        from axe_playwright_python.async_playwright import Axe
    except ImportError:
        missing_service("axe-playwright-python is missing: pip install -e '.[test]'")
    violations = (await Axe().run(page, context=context)).response["violations"]
    if violations:
        print(f"\n{name}: every axe violation\n{describe(violations)}")
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert blocking == [], f"{name}: serious or critical axe violations\n{describe(blocking)}"


@pytest.mark.parametrize("name", list(PAGES))
async def test_the_page_has_no_serious_or_critical_axe_violation(world, name):
    who, path, ready = PAGES[name]
    page = await world.people[who].new_page()
    try:
        if name.endswith("-phone"):
            await page.set_viewport_size(PHONE)
        await page.goto(world.site.at(path.format(w=world)))
        await page.locator(ready).first.wait_for()
        await assert_no_blocking_violation(page, name)
        assert world.errors == []
    finally:
        await page.close()


async def tab_to(page, wanted: str, limit: int = 80) -> bool:
    """Presses Tab until the focused element matches the selector `wanted`."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("(wanted) => document.activeElement.matches(wanted)", wanted):
            return True
    return False


async def test_the_watch_page_buys_and_chats_by_keyboard_alone(world):
    page = await world.people["buyer"].new_page()
    try:
        await page.goto(world.site.at("/shows/1"))
        await page.locator('#watch[data-connected="true"] #buy-form:not([hidden])').wait_for()
        assert await tab_to(page, "#buy-button"), "Tab never reaches the Buy button"
        await page.keyboard.press("Enter")
        await page.locator("#buy-confirm").wait_for()  # the order is asked once more, not placed
        await assert_no_blocking_violation(page, "the Buy confirmation", context="#pin-card")
        assert await tab_to(page, "#cancel-buy")
        await page.keyboard.press("Enter")
        await page.locator("#buy-confirm").wait_for(state="hidden")
        assert await tab_to(page, "#chat-form input"), "Tab never reaches the chat's input"
        await page.keyboard.type("Hello from the keyboard")
        await page.keyboard.press("Enter")
        await page.locator("#chat li", has_text="Hello from the keyboard").wait_for()
        assert world.errors == []
    finally:
        await page.close()


async def test_the_country_is_chosen_by_its_name_in_the_language_and_sent_as_its_code(world, browser):
    context = await browser.new_context(locale="ru-RU", timezone_id="UTC", viewport=DESKTOP)
    try:
        page = await context.new_page()
        await page.goto(world.site.at("/register"))
        assert await page.locator('#country-list option[value="VN"]').text_content() == "Вьетнам"
        country = page.locator('input[name="country"]')
        await country.fill("de")  # a code typed (or picked from the list) shows as the name
        await country.blur()
        assert await country.input_value() == "Германия"
        await country.fill("вьетнам")
        await page.fill('input[name="name"]', "Nguyễn Thị Mai")
        await page.fill('input[name="email"]', "mai@example.vn")
        await page.fill('input[name="password"]', "a-long-password")
        async with page.expect_request("**/api/auth/register") as sent:
            await page.click('#register-form button[type="submit"]')
        assert (await sent.value).post_data_json["country"] == "VN"
        await page.wait_for_url(world.site.at("/"))
    finally:
        await context.close()


async def color_of(locator) -> str:
    return await locator.evaluate("(node) => getComputedStyle(node).color")


async def test_a_success_message_is_a_polite_status_not_an_error(world):
    page = await world.people["anonymous"].new_page()
    try:
        await page.goto(world.site.at("/reset-password"))
        error_color = await page.locator("#reset-request-form .field-error").first.evaluate(
            "(node) => getComputedStyle(node).color")
        await page.fill('#reset-request-form input[name="email"]', "buyer@livemall.example")
        await page.click('#reset-request-form button[type="submit"]')
        sent = page.locator("#reset-sent")
        await sent.wait_for()
        assert await sent.get_attribute("role") == "status"
        assert "form-error" not in await sent.get_attribute("class")
        assert await color_of(sent) != error_color
    finally:
        await page.close()
    page = await world.people["admin"].new_page()
    try:
        await page.goto(world.site.at("/admin"))
        form = page.locator(".role-form").filter(has=page.locator('option[value="member"][selected]')).first
        await form.locator('button[type="submit"]').click()  # the same role again: nothing changes
        saved = form.locator(".field-error")
        await saved.filter(has_text="Saved").wait_for()
        assert await saved.get_attribute("role") == "status"
        assert "is-ok" in await saved.get_attribute("class")
        assert await color_of(saved) == "rgb(23, 122, 65)"  # --ok, not the error's red
    finally:
        await page.close()


async def test_reactions_have_names_and_show_them_without_an_emoji_font(world):
    page = await world.people["buyer"].new_page()
    try:
        await page.goto(world.site.at("/shows/1"))
        reactions = page.locator(".reaction")
        labels = await reactions.evaluate_all("(nodes) => nodes.map((node) => node.getAttribute('aria-label'))")
        assert labels == ["Love it", "Applause", "Hot deal", "Wow"]
        # Without an emoji font site.js marks the page; each button then reads its name.
        await page.evaluate("() => document.documentElement.classList.add('no-emoji')")
        shown = await reactions.evaluate_all(
            "(nodes) => nodes.map((node) => getComputedStyle(node, '::after').content)")
        assert shown == [f'"{label}"' for label in labels]
    finally:
        await page.close()


async def test_every_page_has_the_favicon(world):
    response = await world.people["anonymous"].request.get(world.site.at("/static/favicon.svg"))
    assert response.ok and response.headers["content-type"].startswith("image/svg+xml")
    page = await world.people["anonymous"].new_page()
    try:
        await page.goto(world.site.at("/login"))
        assert await page.locator('link[rel="icon"]').get_attribute("href") == "/static/favicon.svg"
    finally:
        await page.close()
