"""Viewers start at a keyframe, quickly; keyframe requests reach the publisher coalesced."""

from __future__ import annotations

import asyncio

import pytest

from live.keyframes import (
    KeyframeRequester,
    h264_dimensions,
    is_h264_keyframe,
    is_vp8_keyframe,
    vp8_dimensions,
)
from tests.live.conftest import in_order_with_few_gaps


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_late_viewer_gets_a_keyframe_and_decodes_the_live_picture(
    hub, publisher, viewer, codec
):
    # How fast (join p50/p95) is measured by bench/relay.py, not asserted on a shared
    # machine: here, that a late viewer gets a picture its decoder can decode at all.
    source = publisher(codec=codec)
    await source.publish(hub, 1)
    early = viewer()
    await early.join(hub, 1)
    await early.frames(60)  # two seconds in: the publisher sends no keyframe unasked

    live_at_join = early.counters[-1]
    late = viewer()
    await late.join(hub, 1)
    await late.frames(10)

    # the first picture the late viewer decodes is the live one (or one replayed from a
    # keyframe at most replay_window old), not a stale one; the frames after it decode
    assert late.counters[0] >= live_at_join - 15
    assert in_order_with_few_gaps(late.counters), late.counters


async def test_late_viewer_needs_no_new_keyframe_right_after_one(make_hub, publisher, viewer):
    hub = make_hub(replay_window=10.0)  # any keyframe still in the history will do
    await publisher().publish(hub, 1)
    first = viewer()
    await first.join(hub, 1)
    await first.frames(10)
    plis = hub.stats()["plis_sent_total"]

    second = viewer()
    await second.join(hub, 1)
    await second.frames(5)

    assert hub.stats()["plis_sent_total"] == plis
    assert second.counters[0] <= first.counters[0] + 10  # replayed from the keyframe


async def test_viewers_joining_together_cost_the_publisher_at_most_one_pli(
    make_hub, publisher, viewer
):
    hub = make_hub(replay_window=0.0, keyframe_interval=5.0)
    await publisher().publish(hub, 1)
    first = viewer()
    await first.join(hub, 1)
    await first.frames(30)
    plis = hub.stats()["plis_sent_total"]

    crowd = [viewer() for _ in range(4)]
    await asyncio.gather(*(w.join(hub, 1) for w in crowd))
    await asyncio.gather(*(w.frames(3) for w in crowd))

    # (aiortc's publisher also sends keyframes of its own when REMB changes its bitrate)
    assert hub.stats()["plis_sent_total"] <= plis + 1
    assert hub.stats()["keyframe_requests_total"] >= 4


async def test_keyframe_requests_are_rate_limited_and_retried():
    now = [0.0]
    sent = []
    requester = KeyframeRequester(
        lambda: sent.append(now[0]), min_interval=0.5, retry_after=1.0, clock=lambda: now[0]
    )

    requester.request()  # sent at once
    requester.request()  # the keyframe asked for will serve this one too
    requester.keyframe_seen()
    now[0] = 0.2
    requester.request()  # too soon after the last PLI: scheduled for t=0.5
    requester.request()  # already scheduled
    await asyncio.sleep(0.35)  # the timer runs on the real loop clock
    assert sent == [0.0, 0.2]  # one PLI for three requests after the first

    now[0] = 0.5
    requester.request()  # a PLI is out and unanswered for 0.3 s: wait for its keyframe
    now[0] = 1.3
    requester.request()  # unanswered for 1.1 s: ask again
    requester.close()

    assert sent == [0.0, 0.2, 1.3]
    assert requester.requests == 6


def test_pli_unanswered_before_the_first_keyframe_is_repeated_at_the_rate_limit():
    now = [0.0]
    sent = []
    requester = KeyframeRequester(
        lambda: sent.append(now[0]), min_interval=0.5, retry_after=1.0, clock=lambda: now[0]
    )
    requester.request()  # e.g. before the publisher's first packet
    now[0] = 0.3
    requester.request()  # its keyframe may still come

    now[0] = 0.6
    requester.request()  # none came (the stream's first keyframe was lost)

    assert sent == [0.0, 0.6]
    requester.keyframe_seen()
    now[0] = 1.2
    requester.request()
    now[0] = 1.8
    requester.request()  # from the first keyframe on: unanswered for 0.6 s, waits
    assert sent == [0.0, 0.6, 1.2]
    requester.close()


# RFC 6386 9.1: frame tag (key frame, show_frame, first partition size), start code,
# 14-bit width and height. 320x240.
VP8_KEYFRAME = b"\x50\x42\x00\x9d\x01\x2a\x40\x01\xf0\x00" + bytes(20)
VP8_DELTA = b"\x31\x02\x00" + bytes(20)
# Annex-B as aiortc's depayloader writes it: SPS (Constrained Baseline 320x240), PPS, IDR
H264_SPS = b"\x00\x00\x00\x01\x67\x42\xc0\x1e\xda\x05\x07\xc4"
H264_PPS = b"\x00\x00\x00\x01\x68\xce\x3c\x80"
H264_IDR = b"\x00\x00\x00\x01\x65\x88\x84" + bytes(20)
H264_DELTA = b"\x00\x00\x00\x01\x41\x9a" + bytes(20)


def test_keyframes_are_recognised_in_vp8_and_h264_frames():
    assert is_vp8_keyframe(VP8_KEYFRAME)
    assert not is_vp8_keyframe(VP8_DELTA)
    assert is_h264_keyframe(H264_SPS + H264_PPS + H264_IDR)
    assert not is_h264_keyframe(H264_DELTA)


def test_keyframe_headers_give_the_frame_size():
    assert vp8_dimensions(VP8_KEYFRAME) == (320, 240)
    assert h264_dimensions(H264_SPS + H264_PPS + H264_IDR) == (320, 240)


@pytest.mark.parametrize("lost", [1, 3, 6, 10], ids=lambda n: f"{n}_bytes")
def test_vp8_keyframe_that_lost_its_head_is_not_a_keyframe(lost):
    # what is left when the first RTP packet was lost: the rest of the frame, whose
    # first byte has the key-frame bit clear by chance half the time
    headless = VP8_KEYFRAME[lost:]

    assert not is_vp8_keyframe(headless)
    assert vp8_dimensions(headless) is None


def test_vp8_frame_with_a_key_frame_bit_but_no_start_code_is_not_a_keyframe():
    assert not is_vp8_keyframe(b"\x50\x42\x00" + bytes(20))
    assert not is_vp8_keyframe(VP8_KEYFRAME[:9])  # too short to hold the size
    assert not is_vp8_keyframe(b"")


def test_vp8_keyframe_of_size_zero_gives_no_frame_size():
    assert vp8_dimensions(VP8_KEYFRAME[:6] + bytes(4)) is None


@pytest.mark.parametrize(
    "access_unit",
    [H264_IDR, H264_PPS + H264_IDR, H264_SPS + H264_IDR, H264_SPS + H264_PPS],
    ids=["idr_alone", "without_sps", "without_pps", "parameter_sets_without_idr"],
)
def test_h264_access_unit_without_sps_pps_and_idr_is_not_a_keyframe(access_unit):
    assert not is_h264_keyframe(access_unit)


def test_h264_idr_without_its_sps_gives_no_frame_size():
    assert h264_dimensions(H264_PPS + H264_IDR) is None
    assert h264_dimensions(b"\x00\x00\x00\x01\x67\x42") is None  # truncated SPS

