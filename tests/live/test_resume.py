"""A show survives its publisher's hiccups: reconnecting, resuming, the grace period."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import av
import pytest

from live.errors import BadOffer, PublisherExists, ShowNotLive
from live.hub import ShowReconnecting, ShowResumed, ShowStarted
from tests.live.conftest import eventually, read_counter

GRACE = 20.0  # long enough that no test below runs into it by accident


async def _video_stats(peer: Any) -> list[Any]:
    report = await peer.pc.getStats()
    return [s for s in report.values() if s.type == "inbound-rtp" and s.kind == "video"]


async def _lose_publisher(source: Any, events: Any) -> ShowReconnecting:
    seen = len(events.all)
    await source.close()  # a crashed tab or a dropped network: no DELETE
    return await events.next(ShowReconnecting, after=seen)


@pytest.fixture
async def live_show(make_hub, publisher, viewer, events):
    """A hub with a 20 s grace, show 1 published, one viewer that decoded 10 frames."""
    hub = make_hub(publisher_grace=GRACE)
    source = publisher()
    await source.publish(hub, 1)
    watcher = viewer()
    await watcher.join(hub, 1)
    await watcher.frames(10)
    return hub, source, watcher


async def test_a_publisher_that_drops_out_leaves_the_show_reconnecting_not_ended(live_show, events):
    hub, source, watcher = live_show

    lost = await _lose_publisher(source, events)

    assert (lost.show_id, lost.reason) == (1, "ice_failed")
    assert lost.deadline > lost.at
    assert hub.is_live(1) and hub.is_reconnecting(1)
    assert not events.ended
    assert watcher.pc.connectionState == "connected"
    stats = hub.stats()
    assert stats["reconnecting_shows"] == 1 and stats["viewers"] == 1
    assert stats["publishers_lost_total"] == 1


async def test_a_new_publisher_within_the_grace_resumes_the_show_for_the_same_viewers(
    live_show, publisher, events
):
    hub, source, watcher = live_show
    [before] = await _video_stats(watcher)
    await _lose_publisher(source, events)
    decoded_before = len(watcher.counters)
    last_pts = watcher.video_pts[-1]
    lost_at = time.monotonic()

    seen = len(events.all)
    comeback = publisher()
    session = await comeback.publish(hub, 1)
    resumed = await events.next(ShowResumed, after=seen)
    await watcher.until(lambda: len(watcher.counters) >= decoded_before + 10)
    elapsed = time.monotonic() - lost_at

    assert session.kind == "publisher" and resumed.show_id == 1
    assert hub.is_live(1) and not hub.is_reconnecting(1)
    # The viewer decodes the new publisher's frames (its counter starts again at 0)
    # on the connection it had: no new WHEP request.
    assert watcher.counters[decoded_before] < 30
    assert watcher.session is not None and hub.stats()["viewers"] == 1
    # One RTP stream: the same SSRC, sequence numbers without a jump (a jump would
    # count as thousands of packets lost), timestamps that advanced by the time away.
    [after] = await _video_stats(watcher)
    assert after.ssrc == before.ssrc
    assert after.packetsLost < 30
    advanced = ((watcher.video_pts[decoded_before] - last_pts) & 0xFFFFFFFF) / 90000
    assert 0 < advanced < elapsed + 1.0
    assert [type(e) for e in events.all] == [ShowStarted, ShowReconnecting, ShowResumed]


async def test_a_viewer_joining_while_the_show_reconnects_sees_the_resumed_picture(
    live_show, publisher, viewer, events
):
    hub, source, _ = live_show
    await _lose_publisher(source, events)

    late = viewer()
    await late.join(hub, 1)
    await publisher().publish(hub, 1)

    await late.frames(5)
    assert late.counters[0] < 30  # the new publisher's frames


async def test_the_show_ends_when_the_grace_runs_out(make_hub, publisher, viewer, events):
    hub = make_hub(publisher_grace=0.6)
    source = publisher()
    await source.publish(hub, 1)
    watcher = viewer()
    await watcher.join(hub, 1)
    await watcher.frames(5)

    await source.close()
    ended = await events.show_ended()

    assert ended.reason == "ice_failed"
    assert not hub.is_live(1)
    await watcher.until(lambda: watcher.pc.connectionState == "closed")
    with pytest.raises(ShowNotLive):
        await viewer().join(hub, 1)
    # After the end, publishing starts a new show.
    await publisher().publish(hub, 1)
    assert isinstance(events.all[-1], ShowStarted)


async def test_a_second_publisher_while_the_first_is_connected_still_gets_publisher_exists(
    live_show, publisher
):
    hub, _, _ = live_show

    with pytest.raises(PublisherExists):
        await publisher().publish(hub, 1)


async def test_two_publishers_racing_to_resume_one_wins_the_other_gets_publisher_exists(
    live_show, publisher, events
):
    hub, source, _ = live_show
    await _lose_publisher(source, events)

    results = await asyncio.gather(
        publisher().publish(hub, 1), publisher().publish(hub, 1), return_exceptions=True
    )

    assert sorted(type(r).__name__ for r in results) == ["PublisherExists", "Session"]
    assert hub.is_live(1) and not hub.is_reconnecting(1)


async def test_resuming_with_another_codec_is_refused_and_the_show_keeps_waiting(
    live_show, publisher, viewer, events
):
    hub, source, watcher = live_show
    await _lose_publisher(source, events)

    with pytest.raises(BadOffer, match="VP8"):
        await publisher(codec="H264").publish(hub, 1)

    assert hub.is_reconnecting(1)
    decoded = len(watcher.counters)
    await publisher().publish(hub, 1)
    await watcher.until(lambda: len(watcher.counters) >= decoded + 5)


async def test_delete_on_the_lost_publishers_session_ends_a_reconnecting_show(
    make_hub, publisher, events
):
    hub = make_hub(publisher_grace=GRACE)
    source = publisher()
    session = await source.publish(hub, 1)
    await eventually(lambda: hub.stats()["frames_received_total"] > 0)
    await _lose_publisher(source, events)

    await hub.stop(1, session.id)

    ended = await events.show_ended()
    assert ended.reason == "deleted"


async def test_end_finishes_a_reconnecting_show_the_host_no_longer_holds(
    live_show, events
):
    hub, source, watcher = live_show
    await _lose_publisher(source, events)

    assert await hub.end(1) is True

    assert (await events.show_ended()).reason == "deleted"
    assert await hub.end(1) is False
    await watcher.until(lambda: watcher.pc.connectionState == "closed")


def _video_timeline(path: Path) -> tuple[list[int], float]:
    """The recorded frame counters and the video's span in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = []
        counters = []
        for frame in container.decode(stream):
            counters.append(read_counter(frame))
            times.append(float(frame.pts * stream.time_base))
    return counters, times[-1] - times[0]


async def test_a_resumed_show_is_recorded_in_one_file_that_keeps_the_time_away(
    live_show, publisher, events
):
    hub, source, watcher = live_show
    await _lose_publisher(source, events)
    await asyncio.sleep(1.5)  # the host is away for a while
    session = await publisher().publish(hub, 1)
    decoded = len(watcher.counters)
    await watcher.until(lambda: len(watcher.counters) >= decoded + 20)

    await hub.stop(1, session.id)
    ended = await events.show_ended()
    span = (ended.ended_at - events.all[0].started_at).total_seconds()

    assert ended.reason == "deleted"
    path = Path(ended.recording_path)
    assert path == Path(events.all[0].recording_path)
    counters, seconds = _video_timeline(path)
    restarts = [i for i in range(1, len(counters)) if counters[i] < counters[i - 1]]
    assert len(restarts) == 1, counters  # the first publisher's frames, then the second's
    # The file spans the show: the time without a publisher is kept as a held picture.
    assert abs(seconds - span) < 1.0, (seconds, span)
