"""Media reaches viewers: every frame, in order, to every viewer; audio too."""

from __future__ import annotations

import asyncio

import pytest

from tests.live.conftest import in_order_with_few_gaps


async def test_viewer_receives_the_publishers_frames_in_order(hub, publisher, viewer):
    await publisher().publish(hub, 1)
    watcher = viewer()
    await watcher.join(hub, 1)

    await watcher.frames(30)

    assert in_order_with_few_gaps(watcher.counters), watcher.counters


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_several_viewers_each_receive_every_frame_in_order(hub, publisher, viewer, codec):
    source = publisher(codec=codec)
    await source.publish(hub, 1)
    watchers = [viewer() for _ in range(4)]
    await asyncio.gather(*(w.join(hub, 1) for w in watchers))

    await asyncio.gather(*(w.frames(45) for w in watchers))

    for watcher in watchers:
        assert in_order_with_few_gaps(watcher.counters), watcher.counters
    assert hub.stats()["viewers"] == 4
    assert hub.stats()["shows"][1]["tracks"]["video"]["codec"] == codec.lower()


async def test_viewers_receive_the_publishers_audio(hub, publisher, viewer):
    await publisher().publish(hub, 1)
    watcher = viewer()
    await watcher.join(hub, 1)

    await watcher.until(lambda: watcher.audio_frames >= 25)  # half a second of Opus


async def test_viewer_offering_only_audio_gets_only_audio(hub, publisher, viewer):
    await publisher().publish(hub, 1)
    listener = viewer(kinds=("audio",))
    session = await listener.join(hub, 1)

    await listener.until(lambda: listener.audio_frames >= 25)

    assert "m=video" not in session.answer_sdp
    assert listener.counters == []


async def test_viewer_offering_only_video_gets_only_video(hub, publisher, viewer):
    await publisher().publish(hub, 1)
    watcher = viewer(kinds=("video",))
    session = await watcher.join(hub, 1)

    await watcher.frames(30)

    assert "m=audio" not in session.answer_sdp
    assert in_order_with_few_gaps(watcher.counters), watcher.counters
    assert watcher.audio_frames == 0


async def test_video_only_show_reaches_viewers_that_offer_audio_too(hub, publisher, viewer):
    await publisher(audio=False).publish(hub, 1)
    watcher = viewer()
    session = await watcher.join(hub, 1)

    await watcher.frames(30)

    assert "m=audio 0" in session.answer_sdp or "a=inactive" in session.answer_sdp
    assert in_order_with_few_gaps(watcher.counters), watcher.counters


async def test_audio_only_show_reaches_viewers(hub, publisher, viewer):
    await publisher(video=False).publish(hub, 1)
    listener = viewer()
    session = await listener.join(hub, 1)

    await listener.until(lambda: listener.audio_frames >= 25)

    assert "m=video 0" in session.answer_sdp or "a=inactive" in session.answer_sdp


async def test_h264_show_reaches_viewers_in_order(hub, publisher, viewer):
    await publisher(codec="H264").publish(hub, 1)
    watcher = viewer()
    session = await watcher.join(hub, 1)

    await watcher.frames(30)

    assert "H264/90000" in session.answer_sdp and "VP8" not in session.answer_sdp
    assert in_order_with_few_gaps(watcher.counters), watcher.counters


async def test_viewers_get_sender_reports_for_audio_and_video(hub, publisher, viewer):
    await publisher().publish(hub, 1)
    watcher = viewer()
    await watcher.join(hub, 1)
    await watcher.frames(10)

    async def reported_kinds() -> set[str]:
        stats = await watcher.pc.getStats()
        return {s.kind for s in stats.values() if s.type == "remote-outbound-rtp"}

    for _ in range(40):
        if await reported_kinds() == {"audio", "video"}:
            break
        await asyncio.sleep(0.1)
    assert await reported_kinds() == {"audio", "video"}


async def test_stats_report_viewers_and_what_was_forwarded(hub, publisher, viewer):
    await publisher().publish(hub, 1)
    watchers = [viewer(), viewer()]
    await asyncio.gather(*(w.join(hub, 1) for w in watchers))
    await asyncio.gather(*(w.frames(10) for w in watchers))

    stats = hub.stats()

    assert (stats["live_shows"], stats["publishers"], stats["viewers"]) == (1, 1, 2)
    assert stats["packets_forwarded_total"] > 2 * 10
    assert stats["bytes_forwarded_total"] > stats["packets_forwarded_total"] * 10
    assert stats["drops_total"] == 0
    video = stats["shows"][1]["tracks"]["video"]
    assert video["codec"] == "vp8" and video["frames"] >= 10
