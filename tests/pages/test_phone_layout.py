"""The watch, co-view and replay pages as a buyer holds them (issue 16): at 390×844 the
video fills the screen with the info, chat, reactions and the product card over it, and
at 1280×800 the two columns stay; neither covers the Buy button and the chat is
readable; the "products in this show" drawer lists the line-up (the current segment
first) and buys the product chosen there; the replay's markers and chapters seek to
each pin; the co-view room's invitee sees who is in it, and a signed-out invitee is told
whose room it is.

One browser context per test, one page load each (the replay's recording is made with
PyAV, as in test_e2e.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from orders import shows
from orders.models import Order, Product, Role, Segment, Show, ShowStatus, User
from tests.pages.conftest import DESKTOP, PHONE, open_page, shoot, sign_in, watch_page

pytestmark = pytest.mark.asyncio(loop_scope="session")

BUYER = "buyer@livemall.example"

# Whether the element's centre is the element itself (or inside it): nothing drawn over it.
UNCOVERED = """(node) => {
  const box = node.getBoundingClientRect();
  const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return Boolean(hit) && (hit === node || node.contains(hit));
}"""
IN_VIEWPORT = """(node) => {
  const box = node.getBoundingClientRect();
  return box.width > 0 && box.height > 0 && box.top >= 0 && box.left >= 0
    && box.bottom <= window.innerHeight && box.right <= window.innerWidth;
}"""
# What the reader sees of a chat line: its text colour, font size and the nearest opaque
# enough background (a scrim pill over the video on a phone, the white panel on a desktop).
CHAT_LOOK = """(node) => {
  const style = getComputedStyle(node);
  let back = null;
  for (let at = node; at && !back; at = at.parentElement) {
    const colour = getComputedStyle(at).backgroundColor.match(/[\\d.]+/g).map(Number);
    if ((colour.length === 3 || colour[3] >= 0.4)) back = colour.slice(0, 3);
  }
  return { colour: style.color.match(/\\d+/g).slice(0, 3).map(Number), back, size: parseFloat(style.fontSize) };
}"""


def _write_recording(path: Path, seconds: int, fps: int = 5) -> None:
    """A small VP8 WebM like the recorder's (test_e2e.py's, at a few frames a second so
    it is made in well under a second)."""
    import av

    container = av.open(str(path), mode="w", format="webm")
    stream = container.add_stream("libvpx", rate=fps)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    for i in range(fps * seconds):
        frame = av.VideoFrame(320, 240, "yuv420p")
        frame.planes[0].update(bytes((i * 9 + x) % 256 for x in range(320)) * 240)
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts, frame.time_base = i, Fraction(1, fps)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def _luminance(rgb: list[float]) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: list[float], b: list[float]) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


async def _live_with_pin(site, product_name: str, segment_position: int = 3) -> Product:
    async with site.db.transaction() as session:
        await shows.mark_live(session, 1, datetime.now(timezone.utc), None)
        show = await session.get(Show, 1)
        product = await session.scalar(select(Product).where(Product.name == product_name))
        show.pinned_product_id = product.id
        show.current_segment_id = await session.scalar(
            select(Segment.id).where(Segment.show_id == 1, Segment.position == segment_position))
        return product


async def _phone(new_context, **extra):
    return await new_context(viewport=PHONE, is_mobile=True, has_touch=True, **extra)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_overlays_leave_the_buy_button_uncovered_and_the_chat_readable(site, new_context, viewport):
    await _live_with_pin(site, "KF94 Mask (box of 50)")
    phone = viewport is PHONE
    context = await (_phone(new_context) if phone else new_context(viewport=DESKTOP))
    await sign_in(context, site, BUYER)
    page = await watch_page(context, site)
    await page.fill('#chat-form input[name="text"]', "Does it come in black?")
    await page.click('#chat-form button[type="submit"]')
    line = page.locator("#chat li", has_text="Does it come in black?")
    await line.wait_for()

    video = await page.locator("#video").bounding_box()
    if phone:  # the picture fills the screen under the header
        assert video["width"] == 390 and video["height"] > 700
    for overlay in ("#show-title", ".rail .reaction >> nth=0", "#products-toggle", "#chat", "#pin-card"):
        assert await page.locator(overlay).is_visible(), overlay
    buy = page.locator("#buy-button")
    assert await buy.evaluate(IN_VIEWPORT) and await buy.evaluate(UNCOVERED)
    assert await line.evaluate(IN_VIEWPORT) and await line.evaluate(UNCOVERED)
    look = await line.locator(".text").evaluate(CHAT_LOOK)
    assert look["size"] >= 14
    assert _contrast(look["colour"], look["back"]) >= 4.5, look


async def test_a_tap_on_the_video_hides_and_shows_the_overlays(site, new_context):
    await _live_with_pin(site, "KF94 Mask (box of 50)")
    page = await watch_page(await _phone(new_context), site)
    # A point of the picture (or the note over it while it connects) between the title
    # at the top and the chat at the bottom.
    assert await page.evaluate("() => document.getElementById('player').contains(document.elementFromPoint(150, 300))")

    await page.touchscreen.tap(150, 300)
    await page.locator('#watch[data-overlays="hidden"]').wait_for()
    assert not await page.locator("#pin-card").is_visible()
    assert not await page.locator("#show-title").is_visible()
    assert await page.locator("#overlays-toggle").get_attribute("aria-pressed") == "true"

    await page.touchscreen.tap(150, 300)
    await page.locator('#watch[data-overlays="shown"]').wait_for()
    assert await page.locator("#pin-card").is_visible()


async def test_drawer_lists_the_line_up_current_segment_first_and_buys_the_product_chosen(site, new_context, tmp_path):
    await _live_with_pin(site, "KF94 Mask (box of 50)", segment_position=2)
    context = await _phone(new_context)
    await sign_in(context, site, BUYER)
    page = await watch_page(context, site)
    lineup = json.loads(await page.locator("#page-data").text_content())["lineup"]

    await page.click("#products-toggle")
    drawer = page.get_by_test_id("products-drawer")
    await drawer.wait_for()
    assert await page.locator("#products-toggle").get_attribute("aria-expanded") == "true"
    listed = await drawer.locator(".drawer-group").evaluate_all(
        "(groups) => groups.map((g) => [Number(g.dataset.segmentId),"
        " [...g.querySelectorAll('[data-product-id]')].map((i) => Number(i.dataset.productId))])")
    by_position = [[g["segment"]["id"], g["product_ids"]] for g in lineup]
    assert listed == [by_position[1], by_position[0], by_position[2]]  # segment 2 is on now
    await shoot(page, "watch-drawer", tmp_path)

    tea = lineup[0]["product_ids"][0]  # Jeju teas: not the pinned mask
    item = drawer.locator(f'[data-product-id="{tea}"]')
    assert await item.locator(".product-name").text_content() == "Jeju Organic Green Tea 100g"
    await item.locator('button[data-action="buy"]').click()
    assert await drawer.is_hidden()
    assert await page.locator("#pin-name").text_content() == "Jeju Organic Green Tea 100g"
    assert await page.locator("#confirm-text").text_content() == "Buy 1 × Jeju Organic Green Tea 100g for $12.00?"
    assert await page.locator("#confirm-buy").evaluate(UNCOVERED)
    await page.click("#confirm-buy")
    await page.get_by_test_id("order-status").filter(has_text="Order #").wait_for()
    async with site.db.session() as session:
        order = await session.scalar(select(Order).order_by(Order.id.desc()).limit(1))
    assert (order.product_id, order.quantity) == (tea, 1)

    await page.click("#card-back")  # back to the product on screen
    assert await page.locator("#pin-name").text_content() == "KF94 Mask (box of 50)"


async def test_replay_markers_and_chapters_seek_to_each_pin(site, new_context, tmp_path):
    from rooms.models import Pin

    recording = tmp_path / "show-1.webm"
    _write_recording(recording, seconds=6)
    started = datetime.now(timezone.utc) - timedelta(minutes=5)
    async with site.db.transaction() as session:
        show = await session.get(Show, 1)
        show.status, show.started_at, show.ended_at = ShowStatus.ended, started, started + timedelta(seconds=6)
        show.recording_path = str(recording)
        segments = (await session.scalars(select(Segment).where(Segment.show_id == 1).order_by(Segment.position))).all()
        tea, mask = [await session.scalar(select(Product.id).where(Product.name == n))
                     for n in ("Jeju Organic Green Tea 100g", "KF94 Mask (box of 50)")]
        session.add_all([
            Pin(show_id=1, product_id=tea, segment_id=segments[0].id, pinned_at=started + timedelta(seconds=1),
                offset_ms=1000, unpinned_at=started + timedelta(seconds=2)),
            Pin(show_id=1, product_id=mask, segment_id=segments[2].id, pinned_at=started + timedelta(seconds=4),
                offset_ms=4000),
        ])
    page = await open_page(await _phone(new_context), site.at("/shows/1"))
    await page.wait_for_function("() => document.getElementById('video').readyState >= 1")
    markers = page.get_by_test_id("replay-marker")
    assert await markers.count() == 2
    assert await markers.nth(1).get_attribute("aria-label") == "KF94 Mask (box of 50) at 0:04"

    await markers.nth(1).click()
    await page.locator("#pin-name", has_text="KF94 Mask (box of 50)").wait_for()
    assert abs(await page.evaluate("() => document.getElementById('video').currentTime") - 4.0) <= 1.0
    assert await page.locator("#segment-title").text_content() == "Masks and mask lines"

    chapters = page.get_by_test_id("chapters")
    assert await chapters.locator(".chapter-title").all_text_contents() == ["Jeju teas", "Masks and mask lines"]
    await chapters.locator(".product-seek", has_text="Jeju Organic Green Tea 100g").click()
    await page.locator("#pin-name", has_text="Jeju Organic Green Tea 100g").wait_for()
    assert abs(await page.evaluate("() => document.getElementById('video').currentTime") - 1.0) <= 1.0
    assert await page.locator("#segment-title").text_content() == "Jeju teas"
    assert await page.get_by_test_id("chat-replay-note").is_visible()
    await shoot(page, "replay", tmp_path)


async def _room(site) -> tuple[str, str]:
    from rooms.coview import create_room

    async with site.db.transaction() as session:
        member = await session.scalar(select(User).where(User.role == Role.member))
        room = await create_room(session, show_id=1, owner=member, at=datetime.now(timezone.utc), ttl=3600,
                                 member_limit=50)
        return room.code, member.name


async def test_coview_invitee_sees_who_is_in_the_room_over_the_video(site, new_context):
    await _live_with_pin(site, "KF94 Mask (box of 50)")
    code, _owner = await _room(site)
    context = await _phone(new_context)
    await sign_in(context, site, BUYER)
    page = await watch_page(context, site, f"/coview/{code}")

    member = page.get_by_test_id("members").locator("li")
    await member.first.wait_for()
    assert await member.all_text_contents() == ["王芳"]  # the invited buyer is told, not only the owner
    assert await member.first.evaluate(IN_VIEWPORT)
    assert await page.get_by_test_id("private-chat").is_visible()  # the room's chat comes first
    assert not await page.get_by_test_id("public-chat").is_visible()
    await page.click('.chat-tabs [data-chat-tab="show"]')
    assert await page.get_by_test_id("public-chat").is_visible()
    assert not await page.get_by_test_id("private-chat").is_visible()
    assert await member.first.is_visible()  # who is in the room stays in sight
    assert await page.locator("#buy-button").evaluate(UNCOVERED)


async def test_signed_out_invitee_is_told_whose_room_it_is(site):
    code, owner = await _room(site)
    async with aiohttp.ClientSession() as http:
        async with http.get(site.at(f"/coview/{code}")) as response:
            assert str(response.url.path) == "/login"
            html = await response.text()
    assert f"{owner} invited you to their co-view room for “K-Goods Live: Winter Special”" in html
