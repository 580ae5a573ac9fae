"""A recording starts at a keyframe whose header gives the frame size, whatever came first.

The recorder is fed the frames aiortc's encoders make, reassembled as the relay's jitter
buffer hands them over, with the first keyframe missing its first RTP packet as it is
when that packet is lost at the start of a show. No network: these run in milliseconds.
"""

from __future__ import annotations

import fractions
import functools
import random
from pathlib import Path

import av
import pytest
from aiortc.codecs.h264 import H264Encoder, h264_depayload
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload

from live.recorder import Recorder, recording_suffix
from tests.live.conftest import BAND, BANDS, BLACK, HEIGHT, WHITE, WIDTH, read_counter

FRAME_TICKS = 3000  # 30 fps at 90 kHz


@functools.lru_cache(maxsize=4)
def _texture(width: int, height: int) -> bytes:
    return random.Random(width * height).randbytes(width * height)


def textured_counter_frame(
    counter: int, width: int = WIDTH, height: int = HEIGHT, *, colour: bool = False
) -> av.VideoFrame:
    """conftest's counter bands (readable by ``read_counter``) in a strip across the
    middle of a fixed noise texture: a keyframe then takes tens of RTP packets, as a
    camera's does, so losing its first packet leaves the rest of it; delta frames stay
    small because the texture does not move. ``colour`` textures the chroma planes too
    (a larger keyframe for the same size)."""
    frame = av.VideoFrame(width, height, "yuv420p")
    luma = frame.planes[0]
    texture = _texture(width, height)
    bands = b"".join(
        bytes((WHITE if counter >> (BANDS - 1 - i) & 1 else BLACK,)) * BAND for i in range(BANDS)
    )
    strip = bands + bytes((0x80,)) * (width - len(bands))
    pad = bytes(luma.line_size - width)
    rows = [
        strip if abs(y - height // 2) < 16 else texture[y * width : (y + 1) * width]
        for y in range(height)
    ]
    luma.update(b"".join(row + pad for row in rows))
    for chroma in frame.planes[1:]:
        size = chroma.buffer_size
        chroma.update(_texture(size, 1)[:size] if colour else b"\x80" * size)
    return frame


def encode(codec: str, count: int, keyframes: set[int]) -> list[list[bytes]]:
    """RTP payloads of ``count`` frames from aiortc's encoder (VP8 or H.264), frame n
    showing the number n; the first frame and those in ``keyframes`` are keyframes."""
    encoder = Vp8Encoder() if codec == "vp8" else H264Encoder()
    frames = []
    for number in range(count):
        frame = textured_counter_frame(number)
        frame.pts, frame.time_base = number * FRAME_TICKS, fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=number in keyframes)
        frames.append(payloads)
    return frames


def reassemble(codec: str, payloads: list[bytes]) -> bytes:
    """The frame as aiortc's receiver depayloads it and the jitter buffer joins it."""
    depayload = vp8_depayload if codec == "vp8" else h264_depayload
    return b"".join(depayload(payload) for payload in payloads)


def probe(path: Path) -> tuple[list[int], tuple[int, int], float]:
    """The recorded video's frame counters, its size and its duration in s (first to
    last frame, plus one frame at 30 fps), all from decoding the file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        frames = list(container.decode(video=0))
    counters = [read_counter(frame) for frame in frames]
    duration = float(frames[-1].time - frames[0].time) + 1 / 30 if frames else 0.0
    return counters, size, duration


def recorder_for(tmp_path: Path, codec: str) -> Recorder:
    path = tmp_path / f"show-1{recording_suffix(codec)}"
    return Recorder(path, video_codec=codec, audio_codec=None)


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_recording_whose_first_keyframe_lost_its_first_packet_starts_at_the_next_keyframe(
    tmp_path, codec
):
    frames = encode(codec, 60, keyframes={30})
    assert len(frames[0]) > 2  # a keyframe of several packets: losing one leaves the rest
    recorder = recorder_for(tmp_path, codec)

    for number, payloads in enumerate(frames):
        if number == 0:
            payloads = payloads[1:]  # the show's first packet was lost
        # flagged a keyframe as the relay's old one-bit/IDR tests would have flagged it:
        # the recorder must not trust the flag alone
        keyframe = number in (0, 30)
        frame = reassemble(codec, payloads)
        recorder.write("video", frame, number * FRAME_TICKS, keyframe, number / 30)
    path = await recorder.close()

    assert path is not None and not recorder.failed
    assert recorder.frames_without_header == 1
    counters, size, duration = probe(path)
    assert size == (WIDTH, HEIGHT)
    assert counters == list(range(30, 60))
    assert 0.9 <= duration <= 1.1  # 30 frames of media time


async def test_recording_that_never_gets_a_keyframe_with_a_header_is_failed_and_has_no_file(
    tmp_path,
):
    frames = encode("vp8", 10, keyframes=set())
    recorder = recorder_for(tmp_path, "vp8")

    recorder.write("video", reassemble("vp8", frames[0][1:]), 0, True, 0.0)
    for number, payloads in enumerate(frames[1:], start=1):
        frame = reassemble("vp8", payloads)
        recorder.write("video", frame, number * FRAME_TICKS, False, number / 30)
    path = await recorder.close()

    assert path is None and recorder.failed
    assert recorder.frames_without_header == 1 and recorder.dropped == 10
    assert "readable frame size" in (recorder.error or "")
    assert not recorder.path.exists()


async def test_recording_the_muxer_cannot_write_is_failed(tmp_path):
    (tmp_path / "recordings").write_text("a file where the directory should be")
    recorder = Recorder(
        tmp_path / "recordings" / "show-1.webm", video_codec="vp8", audio_codec=None
    )

    recorder.write("video", reassemble("vp8", encode("vp8", 1, set())[0]), 0, True, 0.0)
    path = await recorder.close()

    assert path is None and recorder.failed and recorder.error


async def test_recording_of_a_show_that_sent_nothing_is_empty_not_failed(tmp_path):
    recorder = recorder_for(tmp_path, "vp8")

    path = await recorder.close()

    assert path is None and not recorder.failed
