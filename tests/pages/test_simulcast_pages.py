"""Simulcast from the studio, and the watch page's quality menu, in real Chromium
against the real relay.

The studio's camera here is Chromium's fake device at 30 fps (the default is 20): it
gives 1280x720 when asked, so the studio publishes three layers (q/h/f: a quarter, a
half and the full picture). The relay sends each viewer one of them; the watch page's
quality menu caps it with `PUT /whep/{show}/{session}/quality`.

What a page sends and receives is read from its own RTCPeerConnection's getStats
(`outbound-rtp` per rid in the studio, `inbound-rtp` in the viewer), what the relay
holds from the hub's stats (`layers`: smallest picture first).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import pytest_asyncio

from tests.conftest import missing_service
from tests.pages.conftest import CHROMIUM, CHROMIUM_ARGS, go_live_in_db, sign_in, studio_page, watch_page

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOST = "host@livemall.example"
PUBLISHING_KEY = "livemall.publishing.1"  # studio.js: this tab was publishing show 1
QUALITY_KEY = "livemall.quality"  # watch.js: the viewer's choice, for every show

STUDIO_OUTBOUND = """async () => {
  const publisher = window.livemall.studio.publisher;
  if (!publisher) return [];
  const stats = await publisher.pc.getStats();
  const layers = [];
  stats.forEach((r) => {
    if (r.type === 'outbound-rtp' && r.kind === 'video') {
      layers.push({ rid: r.rid || null, width: r.frameWidth || 0, height: r.frameHeight || 0,
        bytes: r.bytesSent, fps: r.framesPerSecond || 0, limited: r.qualityLimitationReason,
        target: r.targetBitrate || 0 });
    }
  });
  return layers.sort((a, b) => a.width - b.width);
}"""

VIEWER_INBOUND = """async () => {
  const session = window.livemall.player.session;
  if (!session) return null;
  const stats = await session.pc.getStats();
  let video = null;
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      video = { width: r.frameWidth || 0, height: r.frameHeight || 0, decoded: r.framesDecoded || 0,
        keyframes: r.keyFramesDecoded || 0, freezes: r.freezeCount || 0, bytes: r.bytesReceived || 0 };
    }
  });
  return video;
}"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser():
    """Chromium with its fake camera at 30 fps (the session's browser films at 20)."""
    if not Path(CHROMIUM).exists():
        missing_service(f"{CHROMIUM} is missing: apt-get install chromium (listed in .ci/apt-packages)")
    from playwright.async_api import async_playwright

    args = [
        "--use-fake-device-for-media-stream=fps=30" if arg == "--use-fake-device-for-media-stream" else arg
        for arg in CHROMIUM_ARGS
    ]
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        yield chromium
        await chromium.close()


# --- helpers ------------------------------------------------------------------------------


def _video_layers(site) -> list[dict]:
    """The relay's layers of show 1's video, smallest picture first ([] if single-layer)."""
    from web.media import HUB

    show = site.app[HUB].stats()["shows"].get(1)
    return (show or {}).get("tracks", {}).get("video", {}).get("layers") or []


def _flowing(layers: list[dict]) -> list[dict]:
    """The layers that carry a picture now: active, sized, and at a measured rate."""
    return [layer for layer in layers if layer["active"] and layer["size"] and layer["kbit_s"] > 0]


async def _poll(read, done, what: str, timeout: float, describe=None):
    """Reads `read()` until `done(value)`; fails with the last value read (and
    `describe()`'s, if given) after `timeout` seconds. No fixed sleeps: the machine
    may be slow, and the test waits as long as it must and no longer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await read()
        if done(value):
            return value
        if loop.time() > deadline:
            detail = f"; {await describe()}" if describe else ""
            pytest.fail(f"no {what} within {timeout:.0f} s: last {value!r}{detail}")
        await asyncio.sleep(0.5)


def _whip_offers(page) -> list[str]:
    """The SDP of each WHIP POST the page sends (publish and resume), as they go out."""
    offers: list[str] = []

    def sent(request) -> None:
        if request.method == "POST" and request.url.endswith("/whip/1"):
            offers.append(request.post_data or "")

    page.on("request", sent)
    return offers


def _rids(sdp: str) -> list[str]:
    return [line.split(":", 1)[1].split()[0] for line in sdp.splitlines() if line.startswith("a=rid:")]


async def _host(new_context, site, **options):
    context = await new_context(**options)
    await sign_in(context, site, HOST)
    return context


async def _go_live(new_context, site, context=None):
    """The host's studio on air, its camera at 1280x720; and its WHIP offers."""
    studio = await studio_page(context or await _host(new_context, site), site)
    offers = _whip_offers(studio)
    await studio.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
    await studio.click("#go-live")
    # The relay's "live" event can beat the WHIP answer: the page's own publisher is what counts.
    await studio.locator('#studio[data-publishing="true"]').wait_for()
    await studio.get_by_test_id("air-status").filter(has_text="On air").wait_for()
    return studio, offers


async def _relay_layers(site, studio, minimum: int = 2, timeout: float = 20) -> list[dict]:
    """The relay's layers once at least `minimum` of them carry a picture; on failure
    the message holds what the studio says it sends (outbound-rtp per rid)."""

    async def read():
        return _video_layers(site)

    async def describe():
        return f"studio outbound-rtp {await studio.evaluate(STUDIO_OUTBOUND)}"

    return await _poll(read, lambda layers: len(_flowing(layers)) >= minimum,
                       f"{minimum} layers carrying a picture at the relay", timeout, describe)


def _viewer_width(viewer):
    return lambda: viewer.evaluate(VIEWER_INBOUND)


# --- the studio -----------------------------------------------------------------------------


async def test_a_720p_studio_publishes_three_layers_the_relay_receives_apart(site, new_context):
    studio, offers = await _go_live(new_context, site)

    assert _rids(offers[0]) == ["q", "h", "f"]
    assert "a=simulcast:send q;h;f" in offers[0]
    assert json.loads(await studio.evaluate(f"() => sessionStorage.getItem('{PUBLISHING_KEY}')"))["layers"] == 3
    layers = await _relay_layers(site, studio)
    sizes = [tuple(layer["size"]) for layer in _flowing(layers)]
    assert len(set(sizes)) == len(sizes), layers  # distinct pictures, not one layer thrice
    assert sizes == sorted(sizes, key=lambda size: size[0] * size[1]), layers  # smallest first
    print(f"relay layers: {layers}\nstudio outbound-rtp: {await studio.evaluate(STUDIO_OUTBOUND)}")


async def test_a_camera_below_720p_publishes_one_layer(site, new_context):
    context = await _host(new_context, site)
    await context.add_init_script("""(() => {  // a 640x360 camera, whatever the page asks
      const media = navigator.mediaDevices;
      if (!media) return;
      const original = media.getUserMedia.bind(media);
      const small = { width: { exact: 640 }, height: { exact: 360 } };
      media.getUserMedia = (c) => original({ ...c, video: c.video && { ...c.video, ...small } });
    })()""")

    studio, offers = await _go_live(new_context, site, context)

    assert "a=simulcast" not in offers[0] and _rids(offers[0]) == []
    assert json.loads(await studio.evaluate(f"() => sessionStorage.getItem('{PUBLISHING_KEY}')"))["layers"] == 1


async def test_a_reloaded_studio_resumes_with_the_layers_it_went_live_with(site, new_context):
    studio, _ = await _go_live(new_context, site)
    await _relay_layers(site, studio)
    offers = _whip_offers(studio)

    await studio.reload()

    await studio.locator('#studio[data-publishing="true"]').wait_for(timeout=20_000)
    await studio.get_by_test_id("air-status").filter(has_text="On air").wait_for()
    assert offers
    assert all(_rids(offer) == ["q", "h", "f"] for offer in offers)  # a resume may take tries
    assert await studio.locator("#live-error").is_hidden()  # no 400 bad_offer on the way
    await _relay_layers(site, studio)


async def test_taking_over_a_single_layer_show_falls_back_to_one_layer(site, new_context):
    # The show went live elsewhere in one layer (OBS, say) and lost its publisher; this
    # tab never published it, so its three-layer offer is a guess the relay refuses.
    from orders import shows

    await go_live_in_db(site)
    async with site.db.transaction() as session:
        await shows.mark_reconnecting(session, 1)
    context = await _host(new_context, site)

    async def single_layer_show(route):
        if route.request.method == "POST" and "a=simulcast" in (route.request.post_data or ""):
            await route.fulfill(status=400, content_type="application/json", body=json.dumps(
                {"error": "bad_offer", "message": "resume the show with 1 video layer(s), as it was published"}))
        else:
            await route.continue_()

    await context.route("**/whip/1", single_layer_show)
    studio, offers = await _go_live(new_context, site, context)

    assert [len(_rids(offer)) for offer in offers] == [3, 0]
    assert json.loads(await studio.evaluate(f"() => sessionStorage.getItem('{PUBLISHING_KEY}')"))["layers"] == 1


async def test_a_relay_answering_without_simulcast_gets_the_full_picture_in_one_layer(site, new_context):
    # A relay that does not know simulcast (an older node) answers without a=simulcast;
    # the browser then keeps only the first encoding, the quarter picture at 150 kbit/s.
    context = await _host(new_context, site)

    async def without_simulcast(route):
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch()
        kept = [line for line in (await response.text()).splitlines() if not line.startswith(("a=simulcast", "a=rid:"))]
        await route.fulfill(response=response, body="\r\n".join(kept) + "\r\n")

    await context.route("**/whip/1", without_simulcast)
    studio, offers = await _go_live(new_context, site, context)

    assert len(_rids(offers[0])) == 3
    encodings = await studio.evaluate("""() => window.livemall.studio.publisher.senders.video.getParameters()
      .encodings.map((e) => ({ scale: e.scaleResolutionDownBy, max: e.maxBitrate }))""")
    assert encodings == [{"scale": 1, "max": 1_500_000}]
    # One stream goes out, larger than the quarter picture (the encoder may still scale
    # the full one down on a loaded machine); getStats lists the refused ones at 0 bytes.
    await _poll(lambda: studio.evaluate(STUDIO_OUTBOUND),
                lambda out: [s["width"] > 320 for s in out if s["bytes"] > 0] == [True],
                "one stream from the studio, wider than 320", 20)
    assert json.loads(await studio.evaluate(f"() => sessionStorage.getItem('{PUBLISHING_KEY}')"))["layers"] == 1


# --- the watch page ---------------------------------------------------------------------------


async def test_choosing_low_brings_the_viewer_the_smallest_layer(site, new_context):
    studio, _ = await _go_live(new_context, site)
    smallest = _flowing(await _relay_layers(site, studio))[0]["size"][0]
    viewer = await watch_page(await new_context(), site)
    assert await viewer.locator("#quality-control").is_hidden()  # nothing to choose before a picture
    await viewer.locator('#player[data-video="playing"]').wait_for(timeout=20_000)
    # A viewer starts on the largest layer its link is not yet known to refuse.
    before = await _poll(_viewer_width(viewer), lambda v: v and v["width"] > smallest,
                         f"picture wider than {smallest} before Low", 10)

    await viewer.get_by_label("Video quality").select_option("low")

    after = await _poll(_viewer_width(viewer), lambda v: v and v["width"] == smallest,
                        f"{smallest}-wide picture after Low", 10)
    assert await viewer.evaluate(f"() => localStorage.getItem('{QUALITY_KEY}')") == "low"
    print(f"relay layers: {_video_layers(site)}\nviewer before Low: {before}\nviewer after Low: {after}")


async def test_a_stored_choice_applies_to_the_next_session(site, new_context):
    studio, _ = await _go_live(new_context, site)
    smallest = _flowing(await _relay_layers(site, studio))[0]["size"][0]
    context = await new_context()
    await context.add_init_script(
        f"if (location.protocol === 'http:') localStorage.setItem('{QUALITY_KEY}', 'low')")  # about:blank has none

    viewer = await watch_page(context, site)

    await viewer.locator('#player[data-video="playing"]').wait_for(timeout=20_000)
    assert await viewer.get_by_label("Video quality").input_value() == "low"
    await _poll(_viewer_width(viewer), lambda v: v and v["width"] == smallest,
                f"{smallest}-wide picture for a viewer who chose Low before", 10)
