"""A show recorded in parts (its node died and another took it over) plays as one file,
each part at its time from the show's start (live/recording_parts.py)."""

from __future__ import annotations

import fractions
from pathlib import Path

import av

from live.recording_parts import join_parts
from tests.live.conftest import counter_frame, read_counter


def write_part(path: Path, first: int, count: int) -> None:
    """A WebM of ``count`` VP8 frames (counters first..first+count-1) at 30 fps, from 0."""
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=30)
        stream.width, stream.height = counter_frame(0).width, counter_frame(0).height
        stream.pix_fmt = "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8"}
        for n in range(count):
            frame = counter_frame(first + n)
            frame.pts = n
            frame.time_base = fractions.Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def decoded(path: Path) -> list[tuple[float, int]]:
    with av.open(str(path)) as container:
        return [(float(frame.time), read_counter(frame)) for frame in container.decode(video=0)]


def test_parts_play_as_one_file_each_at_its_time_from_the_shows_start(tmp_path):
    first, second = tmp_path / "a.webm", tmp_path / "b.webm"
    write_part(first, 0, 60)  # the show's first 2 s, on the node that died
    write_part(second, 200, 60)  # recorded from 5.0 s on, where the show was taken over

    joined = join_parts([(second, 5.0), (first, 0.0)], tmp_path / "show.webm")

    frames = decoded(joined)
    assert [c for _, c in frames] == list(range(60)) + list(range(200, 260))
    times = dict((c, t) for t, c in frames)
    assert abs(times[0]) < 0.05 and abs(times[200] - 5.0) < 0.05  # pins keep their moments


def test_a_part_cut_off_by_its_nodes_death_is_kept_up_to_the_break(tmp_path):
    first, second = tmp_path / "a.webm", tmp_path / "b.webm"
    write_part(first, 0, 90)
    data = first.read_bytes()
    first.write_bytes(data[: len(data) * 2 // 3])  # SIGKILL: no final cluster, no cues
    write_part(second, 500, 30)

    joined = join_parts([(first, 0.0), (second, 4.0)], tmp_path / "show.webm")

    counters = [c for _, c in decoded(joined)]
    kept = [c for c in counters if c < 500]
    assert kept == list(range(len(kept))) and len(kept) >= 30
    assert counters[len(kept):] == list(range(500, 530))


def test_missing_or_unreadable_parts_are_left_out_and_nothing_readable_gives_none(tmp_path):
    part = tmp_path / "b.webm"
    write_part(part, 0, 30)
    garbage = tmp_path / "garbage.webm"
    garbage.write_bytes(b"not a webm at all")

    joined = join_parts([(tmp_path / "gone.webm", 0.0), (garbage, 1.0), (part, 2.0)], tmp_path / "show.webm")
    assert [c for _, c in decoded(joined)] == list(range(30))

    assert join_parts([(garbage, 0.0)], tmp_path / "none.webm") is None
    assert not (tmp_path / "none.webm").exists()


async def test_a_recording_whose_node_is_killed_plays_up_to_its_last_second(tmp_path):
    # The recorder writes through as it goes: what is on disk before close() is what a
    # SIGKILLed node leaves.
    import asyncio
    import shutil

    from live.recorder import Recorder

    source = tmp_path / "encoded.webm"
    write_part(source, 0, 90)  # 3 s
    with av.open(str(source)) as container:
        packets = [(bytes(p), p.pts, p.is_keyframe) for p in container.demux(video=0) if p.size]
    recorder = Recorder(tmp_path / "live.webm", video_codec="vp8", audio_codec=None)
    start = 0.0
    for data, pts, keyframe in packets:
        recorder.write("video", data, pts * 90, keyframe, start + pts / 1000)
    cut = tmp_path / "cut.webm"
    sizes = [-1]
    for _ in range(100):  # the worker thread muxes on its own time: until the file stops growing
        await asyncio.sleep(0.05)
        sizes.append(recorder.path.stat().st_size if recorder.path.exists() else 0)
        if sizes[-1] > 0 and sizes[-1] == sizes[-2] == sizes[-3]:
            break
    shutil.copy(recorder.path, cut)  # the node dies here
    await recorder.close()

    counters = [c for _, c in decoded(cut)]
    assert counters == list(range(len(counters))) and len(counters) >= 45
