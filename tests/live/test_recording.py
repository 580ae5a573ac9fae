"""Every show is recorded by remuxing its frames: the file opens and has the frames."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av

from tests.live.conftest import in_order_with_few_gaps, read_counter


def _decode(path: Path) -> tuple[list[int], int, tuple[int, int]]:
    """The frame counters of the recorded video, its audio frame count, its size."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        counters = [read_counter(frame) for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = sum(1 for _ in container.decode(audio=0))
    return counters, audio, size


async def test_vp8_show_is_recorded_to_a_playable_webm(hub, publisher, viewer, events):
    session = await publisher().publish(hub, 3)
    watcher = viewer()
    await watcher.join(hub, 3)
    await watcher.frames(45)

    await hub.stop(3, session.id)
    ended = await events.show_ended()

    path = Path(ended.recording_path)
    assert path.name.startswith("show-3-") and path.suffix == ".webm"
    assert path == Path(events.all[0].recording_path)
    counters, audio, size = _decode(path)
    assert len(counters) >= 40
    assert in_order_with_few_gaps(counters), counters
    assert audio >= 40
    assert size == (320, 240)


async def test_h264_show_to_several_viewers_is_recorded_to_a_playable_mkv(
    hub, publisher, viewer, events
):
    session = await publisher(codec="H264").publish(hub, 4)
    watchers = [viewer() for _ in range(3)]
    await asyncio.gather(*(w.join(hub, 4) for w in watchers))
    await asyncio.gather(*(w.frames(30) for w in watchers))

    await hub.stop(4, session.id)
    ended = await events.show_ended()

    path = Path(ended.recording_path)
    assert path.suffix == ".mkv"
    counters, audio, size = _decode(path)
    assert len(counters) >= 25
    assert in_order_with_few_gaps(counters), counters
    assert audio >= 25
    assert size == (320, 240)
    for watcher in watchers:
        assert in_order_with_few_gaps(watcher.counters), watcher.counters


async def test_show_without_a_recordings_dir_is_not_recorded(make_hub, publisher, events):
    hub = make_hub(recordings_dir=None)
    session = await publisher().publish(hub, 5)

    await hub.stop(5, session.id)

    ended = await events.show_ended()
    assert events.all[0].recording_path is None and ended.recording_path is None
