"""End to end in real Chromium with a fake camera: the host goes live from the studio
over WHIP, viewers watch over WHEP, shop, co-view, and see the show end; an ended
show's replay brings each pin up at its moment.

The first test publishes for real (Chromium's fake camera over WHIP to the relay), so
the replay it ends with plays the relay's own recording; the second uses a recording
made with PyAV to check pins against exact playback positions.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import pytest
from sqlalchemy import select

from orders.models import Order, Product, Show, ShowStatus
from tests.pages.conftest import open_page, sign_in, studio_page, watch_page

pytestmark = pytest.mark.asyncio(loop_scope="session")

VIDEO_PLAYS = """() => {
  const v = document.getElementById('video');
  return v.videoWidth > 0 && v.currentTime > 0;
}"""


async def _person(new_context, site, email: str | None, **options):
    context = await new_context(**options)
    if email:
        await sign_in(context, site, email)
    return context


async def _current_time(page) -> float:
    return await page.evaluate("() => document.getElementById('video').currentTime")


async def test_host_goes_live_viewers_watch_shop_coview_and_see_the_end(site, new_context):
    # The host goes live from the studio with Chromium's fake camera.
    studio = await studio_page(await _person(new_context, site, "host@livemall.example"), site)
    await studio.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
    await studio.click("#go-live")
    await studio.get_by_test_id("air-status").filter(has_text="On air").wait_for()
    await studio.locator('.segment[aria-pressed="true"]', has_text="Jeju teas").wait_for()

    # A viewer sees moving video.
    buyer = await watch_page(await _person(new_context, site, "buyer@livemall.example"), site)
    await buyer.get_by_test_id("status").filter(has_text="Live").wait_for()
    await buyer.wait_for_function(VIDEO_PLAYS, timeout=20_000)
    started = await _current_time(buyer)
    await buyer.wait_for_function(
        f"() => document.getElementById('video').currentTime > {started + 0.5}", timeout=10_000)
    assert await buyer.evaluate("() => document.getElementById('video').videoWidth") > 0
    second = await watch_page(await _person(new_context, site, None, locale="ko-KR"), site)

    # The host switches segment and pins a product; the viewer sees both.
    await studio.locator(".segment", has_text="Masks and mask lines").click()
    await buyer.locator("#segment-title", has_text="Masks and mask lines").wait_for()
    await studio.locator(".lineup li", has_text="KF94 Mask").locator("button.pin").click()
    await buyer.locator("#pin-name", has_text="KF94 Mask (box of 50)").wait_for()
    await second.get_by_test_id("stock").filter(has_text="500개 남음").wait_for()

    # The viewer buys; the order is confirmed and the stock drops on the second viewer's page.
    await buyer.fill('#buy-form input[name="quantity"]', "2")
    await buyer.click("#buy-button")
    await buyer.click("#confirm-buy")
    await buyer.get_by_test_id("order-status").filter(has_text="confirmed").wait_for()
    await second.get_by_test_id("stock").filter(has_text="498개 남음").wait_for()
    async with site.db.session() as session:
        order = await session.scalar(select(Order))
    assert (order.quantity, order.committee_id is not None) == (2, True)

    # A member opens a co-view room; the buyer joins by the link; private chat stays private.
    member = await watch_page(await _person(new_context, site, "member@livemall.example"), site)
    await member.click("#start-coview")
    await member.wait_for_url("**/coview/**")
    invite = await member.locator("#invite-link").input_value()
    await buyer.goto(invite)
    await buyer.locator('#watch[data-connected="true"]').wait_for()
    await buyer.wait_for_function(VIDEO_PLAYS, timeout=20_000)
    await buyer.fill('#private-chat-form input[name="text"]', "only for this room")
    await buyer.click('#private-chat-form button[type="submit"]')
    await member.locator("#private-chat li .text", has_text="only for this room").wait_for()
    await buyer.fill('#chat-form input[name="text"]', "for everyone")
    await buyer.click('#chat-form button[type="submit"]')
    await second.locator("#chat li .text", has_text="for everyone").wait_for()
    assert await second.locator("#chat li .text").all_text_contents() == ["for everyone"]

    # The host ends the show; every viewer sees it ended.
    await studio.click("#end-show")
    await studio.click("#confirm-end")  # End asks first
    await studio.get_by_test_id("air-status").filter(has_text="Ended").wait_for()
    for page in (buyer, second, member):
        await page.get_by_test_id("status").filter(has_text="종료" if page is second else "Ended").wait_for()
    assert await second.locator("#player-note").text_content() == "방송이 끝났습니다."

    # The replay plays what was recorded and brings the pin up at its moment.
    replay = await open_page(await _person(new_context, site, None), site.at("/shows/1"))
    assert await replay.locator("#video").get_attribute("src") == "/recordings/1"
    await replay.wait_for_function("() => document.getElementById('video').readyState >= 1", timeout=10_000)
    (pin,) = await replay.evaluate("() => JSON.parse(document.getElementById('page-data').textContent).pins")
    assert pin["offset_ms"] > 0  # pinned seconds into the show, after the segment switch
    assert await replay.locator("#pin-card").is_hidden()  # at 0:00 nothing was pinned yet
    await replay.evaluate("() => document.getElementById('video').play()")
    await replay.wait_for_function(VIDEO_PLAYS, timeout=10_000)
    await replay.locator("#pin-name", has_text="KF94 Mask (box of 50)").wait_for(timeout=30_000)
    # It came up when playback reached the moment it was pinned, not before.
    assert await _current_time(replay) * 1000 >= pin["offset_ms"]


def _write_recording(path: Path, seconds: int = 4) -> None:
    """A small VP8 WebM (what the recorder remuxes to), made with PyAV."""
    import av

    container = av.open(str(path), mode="w", format="webm")
    stream = container.add_stream("libvpx", rate=25)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    for i in range(25 * seconds):
        frame = av.VideoFrame(320, 240, "yuv420p")
        frame.planes[0].update(bytes((i * 3 + x) % 256 for x in range(320)) * 240)
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts, frame.time_base = i, Fraction(1, 25)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


async def test_replay_brings_up_each_pin_at_its_moment(site, new_context, tmp_path):
    from rooms.models import Pin

    recording = tmp_path / "show-1.webm"
    _write_recording(recording)
    started = datetime.now(timezone.utc) - timedelta(minutes=5)
    async with site.db.transaction() as session:
        show = await session.get(Show, 1)
        show.status, show.started_at, show.ended_at = ShowStatus.ended, started, started + timedelta(seconds=4)
        show.recording_path = str(recording)
        tea, mask = [await session.scalar(select(Product.id).where(Product.name == n))
                     for n in ("Jeju Organic Green Tea 100g", "KF94 Mask (box of 50)")]
        session.add_all([
            Pin(show_id=1, product_id=tea, pinned_at=started, offset_ms=0,
                unpinned_at=started + timedelta(milliseconds=1500)),
            Pin(show_id=1, product_id=mask, pinned_at=started + timedelta(milliseconds=2000), offset_ms=2000),
        ])
    page = await open_page(await new_context(), site.at("/shows/1"))
    await page.locator("#pin-name", has_text="Jeju Organic Green Tea 100g").wait_for()
    await page.evaluate("() => document.getElementById('video').play()")
    await page.locator("#pin-name", has_text="KF94 Mask (box of 50)").wait_for(timeout=10_000)
    await page.evaluate("() => { const v = document.getElementById('video'); v.pause(); v.currentTime = 1.7; }")
    await page.locator("#pin-card").wait_for(state="hidden")
