"""Nothing a user typed is ever rendered as markup: a name, a product name, a segment
title, chat (public and private) and a question, each carrying an <img onerror>, on
every page that shows them.

The browsers here run with the Content-Security-Policy bypassed: the policy forbids
inline handlers, so with it on a markup injection would go unnoticed. Without it, an
injected <img src=x onerror=…> runs and records the page it ran on.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from orders.accounts import create_user
from orders.models import Product, Role, Segment, Show
from rooms.coview import create_room
from tests.pages.conftest import go_live_in_db, open_page, sign_in, studio_page, watch_page

pytestmark = pytest.mark.asyncio(loop_scope="session")

ATTACK = '<img src=x onerror="window.pwned=(window.pwned||[]).concat(location.pathname)">'
NAME = f"Eve{ATTACK}"
PRODUCT = f"Mask{ATTACK}"
SEGMENT = f"Masks{ATTACK}&amp;"
CHAT = f"hi{ATTACK}<script>window.pwned=['script']</script>"
PRIVATE = f"psst{ATTACK}"
QUESTION = f"MOQ?{ATTACK}"


async def _unexploited(page) -> None:
    """No injected element exists on the page and no injected handler ran."""
    assert await page.locator('img[src="x"], script:not([src]):not([type="application/json"])').count() == 0
    assert await page.evaluate("window.pwned") is None


async def _person(new_context, site, email: str | None, password: str = "livemall-demo"):
    context = await new_context(bypass_csp=True)
    if email:
        await sign_in(context, site, email, password)
    return context


async def test_hostile_text_typed_by_users_shows_as_text_on_every_page(site, new_context):
    await go_live_in_db(site)
    async with site.db.transaction() as session:
        eve = await create_user(session, email="eve@example.org", password="a-long-password", name=NAME,
                                role=Role.member, country="KR")
        product = await session.scalar(select(Product).where(Product.name == "KF94 Mask (box of 50)"))
        product.name = PRODUCT
        segment = await session.scalar(select(Segment).where(Segment.title == "Masks and mask lines"))
        segment.title = SEGMENT
        show = await session.get(Show, 1)
        show.current_segment_id, show.pinned_product_id = segment.id, product.id
        code = (await create_room(session, show_id=1, owner=eve, at=datetime.now(timezone.utc), ttl=3600,
                                  member_limit=50)).code
    dialogs: list[str] = []

    # Eve, in her co-view room: chats in public and in private, asks a question.
    owner = await watch_page(await _person(new_context, site, "eve@example.org", "a-long-password"), site,
                             f"/coview/{code}")
    owner.on("dialog", lambda d: dialogs.append(d.message))
    for form, text in (("#chat-form", CHAT), ("#private-chat-form", PRIVATE), ("#ask-form", QUESTION)):
        await owner.fill(f'{form} input[name="text"]', text)
        await owner.click(f'{form} button[type="submit"]')
    await owner.locator("#private-chat li .text").filter(has_text="psst").wait_for()

    # A buyer in her room buys the hostile product, which is credited to her.
    buyer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site, f"/coview/{code}")
    await buyer.click("#buy-button")
    assert await buyer.locator("#confirm-text").text_content() == f"Buy 1 × {PRODUCT} for $18.00?"
    await buyer.click("#confirm-buy")
    await buyer.get_by_test_id("order-status").filter(has_text="confirmed").wait_for()
    credited = owner.get_by_test_id("credited").locator("li")
    await credited.filter(has_text="Mask").wait_for()
    assert PRODUCT in await credited.text_content()
    assert await owner.locator("#members li").filter(has_text="Eve").text_content() == NAME
    assert await owner.locator("#pin-name").text_content() == PRODUCT
    assert await owner.locator("#segment-title").text_content() == SEGMENT

    # The host's studio: chat with its author, the question queue, the line-up, the ticker.
    studio = await studio_page(await _person(new_context, site, "host@livemall.example"), site)
    studio.on("dialog", lambda d: dialogs.append(d.message))
    await studio.locator("#chat li .text").filter(has_text="hi").wait_for()
    assert await studio.locator("#chat li .text").last.text_content() == CHAT
    assert await studio.locator("#chat li .author").last.text_content() == NAME
    question = studio.get_by_test_id("questions").locator("li").last
    assert (await question.locator(".author").text_content(), await question.locator(".text").text_content()) == (
        NAME, QUESTION)
    assert await studio.locator(".lineup .product-name").filter(has_text="Mask<img").text_content() == PRODUCT

    # An anonymous viewer, the schedule and the admin's lists.
    viewer = await watch_page(await _person(new_context, site, None), site)
    assert await viewer.locator("#chat li .text").last.text_content() == CHAT
    assert await viewer.locator("#pin-name").text_content() == PRODUCT
    schedule = await open_page(await _person(new_context, site, None), site.at("/"))
    assert SEGMENT in await schedule.locator('[data-show-id="1"]').text_content()
    admin = await open_page(await _person(new_context, site, "admin@livemall.example"), site.at("/admin"))
    assert await admin.locator("#users td").filter(has_text="Eve").first.text_content() == NAME
    assert PRODUCT in await admin.locator("#orders tbody").text_content()
    assert SEGMENT in await admin.locator('#shows tr[data-show-id="1"]').text_content()

    for page in (owner, buyer, studio, viewer, schedule, admin):
        await _unexploited(page)
    assert dialogs == []


async def test_an_injected_handler_would_be_caught_with_the_policy_bypassed(site, new_context):
    # The check above can fail: markup put in as HTML here runs its handler.
    page = await open_page(await _person(new_context, site, None), site.at("/"))
    await page.evaluate("(html) => document.getElementById('main').insertAdjacentHTML('beforeend', html)", ATTACK)
    await page.wait_for_function("() => Array.isArray(window.pwned)")
    assert await page.evaluate("window.pwned") == ["/"]
