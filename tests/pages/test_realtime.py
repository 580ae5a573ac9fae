"""The pages over the real Socket.IO rooms and orders API, without video: chat,
host controls, buying, quotes, co-view rooms, questions and moderation.
(The show is marked live in the database, as the media layer does on publish.)"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from orders.models import Order, Product
from tests.pages.conftest import go_live_in_db, open_page, sign_in, studio_page, watch_page

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _person(new_context, site, email: str | None, **options):
    context = await new_context(**options)
    if email:
        await sign_in(context, site, email)
    return context


def _plain(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").replace("\u202f", " ").split())


async def _say(page, text: str, form: str = "#chat-form") -> None:
    await page.fill(f'{form} input[name="text"]', text)
    await page.click(f'{form} button[type="submit"]')


async def test_chat_from_one_viewer_reaches_another_as_plain_text(site, new_context):
    await go_live_in_db(site)
    reader = await watch_page(await _person(new_context, site, None), site)
    writer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site)
    hostile = '<img src=x onerror="window.pwned=1"> 안녕하세요 & привет'
    await _say(writer, hostile)
    message = reader.locator("#chat li .text").last
    await message.wait_for()
    assert await message.text_content() == hostile
    assert await reader.locator("#chat img").count() == 0
    assert await reader.evaluate("window.pwned") is None
    assert await reader.locator("#chat li .author").last.text_content() == "王芳"


async def test_chat_history_is_shown_to_a_late_viewer(site, new_context):
    await go_live_in_db(site)
    writer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site)
    await _say(writer, "first!")
    await writer.locator("#chat li .text", has_text="first!").wait_for()
    late = await watch_page(await _person(new_context, site, None), site)
    assert await late.locator("#chat li .text").all_text_contents() == ["first!"]


async def test_host_switches_segment_and_pins_and_the_viewer_sees_both(site, new_context):
    await go_live_in_db(site)
    viewer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site)
    studio = await studio_page(await _person(new_context, site, "host@livemall.example"), site)
    await studio.locator(".segment", has_text="Beauty from Seoul").click()
    await viewer.locator("#segment-title", has_text="Beauty from Seoul").wait_for()
    assert await viewer.locator("#segment-committee").text_content() == "Cosmetics & Beauty"

    await studio.locator('.lineup li', has_text="Snail Mucin Essence").locator("button.pin").click()
    await viewer.locator("#pin-name", has_text="Snail Mucin Essence 100ml").wait_for()
    assert await viewer.get_by_test_id("price").text_content() == "$22.00"
    assert await viewer.get_by_test_id("stock").text_content() == "60 left"
    assert await studio.locator('.lineup li', has_text="Snail Mucin").locator("button.pin").get_attribute(
        "aria-pressed") == "true"

    await studio.click("#unpin")
    await viewer.locator("#pin-card").wait_for(state="hidden")


async def test_buying_confirms_the_order_and_another_viewer_sees_the_stock_drop(site, new_context):
    await go_live_in_db(site)
    studio = await studio_page(await _person(new_context, site, "host@livemall.example"), site)
    buyer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site)
    other = await watch_page(await _person(new_context, site, None, locale="ko-KR"), site)
    await studio.locator('.lineup li', has_text="Yuja Honey Tea").locator("button.pin").click()
    await buyer.locator("#pin-name", has_text="Yuja Honey Tea 1kg").wait_for()
    await other.get_by_test_id("stock").filter(has_text="80개 남음").wait_for()

    await buyer.fill('#buy-form input[name="quantity"]', "3")
    await buyer.click("#buy-button")
    assert await buyer.locator("#confirm-text").text_content() == "Buy 3 × Yuja Honey Tea 1kg for $29.70?"
    await buyer.click("#confirm-buy")
    await buyer.get_by_test_id("order-status").filter(has_text="confirmed").wait_for()
    status = buyer.get_by_test_id("order-status")
    assert (await status.text_content()).startswith("Order #1: confirmed, awaiting payment")
    assert await status.get_by_role("link").get_attribute("href") == "/orders/1/checkout"
    await other.get_by_test_id("stock").filter(has_text="77개 남음").wait_for()
    await buyer.get_by_test_id("stock").filter(has_text="77 left").wait_for()
    await studio.get_by_test_id("sales").filter(has_text="3 × Yuja Honey Tea 1kg sold").wait_for()


async def test_a_double_click_on_confirm_orders_once(site, new_context):
    await go_live_in_db(site)
    async with site.db.transaction() as session:
        from orders.models import Show

        show = await session.get(Show, 1)
        show.pinned_product_id = await session.scalar(select(Product.id).where(Product.name == "KF94 Mask (box of 50)"))
    buyer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site)
    await buyer.click("#buy-button")
    await buyer.dblclick("#confirm-buy")
    await buyer.get_by_test_id("order-status").filter(has_text="confirmed").wait_for()
    async with site.db.session() as session:
        assert await session.scalar(select(func.count(Order.id))) == 1
    # A new attempt is a new order (with its own key).
    await buyer.click("#buy-button")
    await buyer.click("#confirm-buy")
    await buyer.get_by_test_id("order-status").filter(has_text="Order #2").wait_for()


async def test_quote_form_shows_field_errors_then_sends_the_request(site, new_context):
    await go_live_in_db(site)
    async with site.db.transaction() as session:
        from orders.models import Show

        show = await session.get(Show, 1)
        show.pinned_product_id = await session.scalar(select(Product.id).where(Product.name == "Mask Production Line"))
    buyer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site)
    await buyer.fill('#quote-form input[name="destination_country"]', "Vietnam")
    await buyer.click('#quote-form button[type="submit"]')
    error = buyer.locator('#quote-form .field-error[data-for="destination_country"]')
    await error.filter(has_text="Two letters").wait_for()
    await buyer.fill('#quote-form input[name="destination_country"]', "vn")
    await buyer.fill('#quote-form input[name="quantity"]', "2")
    await buyer.select_option('#quote-form select[name="incoterm"]', "CIF")
    await buyer.fill('#quote-form textarea[name="note"]', "Delivery to Hai Phong <port>")
    await buyer.click('#quote-form button[type="submit"]')
    await buyer.locator("#quote-status", has_text="Quote request #1 sent").wait_for()
    assert await error.text_content() == ""


async def test_coview_room_private_chat_stays_out_of_the_public_chat(site, new_context):
    await go_live_in_db(site)
    member = await watch_page(await _person(new_context, site, "member@livemall.example"), site)
    await member.click("#start-coview")
    await member.wait_for_url("**/coview/**")
    await member.locator('#watch[data-connected="true"]').wait_for()
    invite = await member.locator("#invite-link").input_value()
    assert invite == member.url

    buyer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site, invite[len(site.url):])
    public = await watch_page(await _person(new_context, site, None), site)
    await member.locator("#members li", has_text="王芳").wait_for()

    await _say(buyer, "is the tea organic?", "#private-chat-form")
    await member.locator("#private-chat li .text", has_text="is the tea organic?").wait_for()
    await _say(buyer, "hello everyone")
    await public.locator("#chat li .text", has_text="hello everyone").wait_for()
    assert await public.locator("#chat li .text").all_text_contents() == ["hello everyone"]
    assert await member.locator("#chat li .text").all_text_contents() == ["hello everyone"]


async def test_coview_owner_copies_the_invite_and_sees_the_orders_credited_to_them(site, new_context):
    from datetime import datetime, timezone

    from orders.models import Role, User
    from rooms.coview import create_room

    await go_live_in_db(site)
    async with site.db.transaction() as session:
        from orders.models import Show

        show = await session.get(Show, 1)
        show.pinned_product_id = await session.scalar(select(Product.id).where(Product.name == "KF94 Mask (box of 50)"))
        owner = await session.scalar(select(User).where(User.role == Role.member))
        code = (await create_room(session, show_id=1, owner=owner, at=datetime.now(timezone.utc), ttl=3600,
                                  member_limit=50)).code
    member_context = await _person(new_context, site, "member@livemall.example", locale="ko-KR",
                                   permissions=["clipboard-read", "clipboard-write"])
    member = await watch_page(member_context, site, f"/coview/{code}")
    assert await member.locator("#credited li").all_text_contents() == ["아직 이 방에서 들어온 주문이 없습니다."]
    await member.click("#copy-invite")
    await member.locator("#copy-done", has_text="복사했습니다").wait_for()
    assert await member.evaluate("navigator.clipboard.readText()") == site.at(f"/coview/{code}")

    buyer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site, f"/coview/{code}")
    assert await buyer.locator("#invite-link").count() == 0
    assert await buyer.locator("#credited").count() == 0
    await buyer.fill('#buy-form input[name="quantity"]', "2")
    await buyer.click("#buy-button")
    await buyer.click("#confirm-buy")
    await buyer.get_by_test_id("order-status").filter(has_text="confirmed").wait_for()

    credited = member.get_by_test_id("credited").locator("li")
    await credited.filter(has_text="KF94 Mask (box of 50)").wait_for()
    assert _plain(await credited.text_content()) == "주문 #1: KF94 Mask (box of 50) 2개, US$36.00 접수됨, 결제 대기"
    async with site.db.session() as session:
        order = await session.scalar(select(Order))
        assert order.broker_id == owner.id

    # Paid: the commission (3 % of the medical committee's sale) is the member's.
    admin = await _person(new_context, site, "admin@livemall.example")
    assert (await admin.request.post(site.at(f"/api/orders/{order.id}/confirm-payment"))).status == 200
    await member.reload()
    await credited.filter(has_text="내 수수료").wait_for()
    assert _plain(await credited.locator(".commission").text_content()) == "내 수수료 US$1.08"


async def test_coview_question_is_marked_in_the_hosts_queue_and_answered(site, new_context):
    await go_live_in_db(site)
    member = await watch_page(await _person(new_context, site, "member@livemall.example"), site)
    await member.click("#start-coview")
    await member.wait_for_url("**/coview/**")
    await member.locator('#watch[data-connected="true"]').wait_for()
    studio = await studio_page(await _person(new_context, site, "host@livemall.example"), site)
    await _say(member, "MOQ for Vietnam?", "#ask-form")
    question = studio.get_by_test_id("questions").locator("li", has_text="MOQ for Vietnam?")
    await question.wait_for()
    assert await question.locator(".chip").text_content() == "via co-view"
    await question.locator("button.answer").click()
    await member.locator("#my-questions li", has_text="MOQ for Vietnam?").locator(".answered").wait_for()


async def test_host_deletes_a_message_and_sets_slow_mode(site, new_context):
    await go_live_in_db(site)
    viewer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site)
    studio = await studio_page(await _person(new_context, site, "host@livemall.example"), site)
    await _say(viewer, "spam spam spam")
    line = studio.locator("#chat li", has_text="spam spam spam")
    await line.wait_for()
    await line.locator("button.delete").click()
    await viewer.locator("#chat li", has_text="spam spam spam").wait_for(state="detached")

    await studio.select_option("#slow-mode", "30")
    await viewer.locator("#slow-mode-note", has_text="one message every 30 seconds").wait_for()
    # The viewer's last message was a moment ago: the next one has to wait.
    await _say(viewer, "again")
    await viewer.locator("#chat-form .field-error", has_text="Slow mode: wait").wait_for()
    assert await viewer.locator("#chat li .text", has_text="again").count() == 0


async def test_viewer_count_counts_distinct_viewers(site, new_context):
    await go_live_in_db(site)
    first = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site)
    await watch_page(await _person(new_context, site, "member@livemall.example"), site)
    await first.get_by_test_id("viewers").filter(has_text="2 watching").wait_for()


async def test_viewers_see_the_show_end(site, new_context):
    from web.appkeys import EVENTS

    await go_live_in_db(site)
    viewer = await watch_page(await _person(new_context, site, None), site)
    # What web/media.py sends when the publisher stops.
    await site.app[EVENTS].to_show(1, "show_status", {"status": "ended"})
    await viewer.get_by_test_id("status").filter(has_text="Ended").wait_for()
    assert await viewer.locator("#player-note").text_content() == "This show has ended."


async def test_reaction_buttons_send_reactions(site, new_context):
    await go_live_in_db(site)
    viewer = await watch_page(await _person(new_context, site, None), site)
    other = await watch_page(await _person(new_context, site, None), site)
    await viewer.click('.reaction[data-kind="fire"]')
    await other.locator("#reaction-layer .float", has_text="🔥").first.wait_for()


async def test_anonymous_viewer_cannot_chat_but_reads(site, new_context):
    await go_live_in_db(site)
    page = await open_page(await new_context(), site.at("/shows/1"))
    assert await page.locator("#chat-form").count() == 0
    assert await page.locator("#chat-panel a", has_text="Sign in to chat").get_attribute(
        "href") == "/login?next=/shows/1"
