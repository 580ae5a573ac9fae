"""Shows whose publisher loses its first packets are still recorded whole.

The publisher's network is made to lose the first video RTP packets it sends (they
never reach the relay, so the relay never asks for them again): the head of the first
keyframe, or all of it. Each recording's video must play at the publisher's frame size
and last as long as the show's video, give or take a second. Shows run in parallel
batches to keep the time small; a show's length is counted in frames made, not in
wall-clock seconds, which a busy machine stretches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import av
import pytest
from aiortc.rtp import RtpPacket, is_rtcp

from live import aiortc_hooks
from live.hub import LiveHub
from tests.live.conftest import (
    HEIGHT,
    WIDTH,
    CounterTrack,
    Events,
    TestPublisher,
    eventually,
    in_order_with_few_gaps,
)
from tests.live.test_recording_start import probe, textured_counter_frame

SHOW_FRAMES = 60  # 2 s of media at 30 fps
SHOWS_PER_CODEC = 20
PARALLEL = 5
# first video packets lost: none, the first keyframe's head (its first 1-3 packets of
# ~35: VP8's first partition, or H.264's SPS/PPS and the IDR's start), and the whole
# first keyframe and a few frames after it
LOST_AT_START = (0, 1, 2, 3, 40)


class TexturedCounterTrack(CounterTrack):
    """CounterTrack's numbered frames on a texture, so keyframes take tens of packets."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT, colour: bool = False) -> None:
        super().__init__()
        self.width, self.height, self.colour = width, height, colour
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = textured_counter_frame(self.sent, self.width, self.height, colour=self.colour)
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        for count, made in self._waiting:
            if self.sent >= count and not made.done():
                made.set_result(None)
        return frame

    async def made(self, count: int) -> None:
        """Until ``count`` frames are made. On a busy machine aiortc makes frames late
        (stamped for 30 fps all the same), so a show is counted in frames, not seconds."""
        made = asyncio.get_running_loop().create_future()
        self._waiting.append((count, made))
        if self.sent >= count:
            made.set_result(None)
        await asyncio.wait_for(made, 30)


class VideoLoss:
    """The publisher's network loses the first transmission of the video RTP packets
    ``lose(index)`` picks (index: the count of video packets sent before it); its
    retransmissions (RTX, another payload type) get through."""

    def __init__(self, publisher: TestPublisher, lose: Callable[[int], bool]) -> None:
        transceiver = next(t for t in publisher.pc.getTransceivers() if t.kind == "video")
        self._payload_type = transceiver._codecs[0].payloadType  # negotiated by publish()
        self._lose = lose
        self._send = transceiver.sender.transport._send_rtp
        self.sent = 0
        self.lost: list[int] = []
        self.lost_frames: set[int] = set()  # their RTP timestamps
        self.first_frame_packets = 0
        self._first_timestamp: Optional[int] = None
        transceiver.sender.transport._send_rtp = self._send_rtp

    async def _send_rtp(self, data: bytes) -> None:
        if not is_rtcp(data) and data[1] & 0x7F == self._payload_type:
            packet = RtpPacket.parse(data)
            if self._first_timestamp is None:
                self._first_timestamp = packet.timestamp
            if packet.timestamp == self._first_timestamp:
                self.first_frame_packets += 1
            index = self.sent
            self.sent += 1
            if self._lose(index):
                self.lost.append(packet.sequence_number)
                self.lost_frames.add(packet.timestamp)
                return
        await self._send(data)


@dataclass
class RecordedShow:
    show_id: int
    lost: int
    recording: Optional[Path]
    first_frame_packets: int


async def record_show(
    hub: LiveHub,
    events: Events,
    publisher: TestPublisher,
    show_id: int,
    lose: Callable[[int], bool],
    frames: int = SHOW_FRAMES,
) -> RecordedShow:
    """Publish, run the show for ``frames`` frames, stop it. Frames queue up in the
    publisher's encoder and in the relay on a busy machine, so the show stops once the
    first ``frames`` that were not lost have reached the relay (the publisher sends on
    meanwhile, so a packet lost near the end is still noticed and asked for)."""
    video = publisher.video
    assert isinstance(video, TexturedCounterTrack)
    session = await publisher.publish(hub, show_id)
    loss = VideoLoss(publisher, lose)
    await video.made(frames)
    expected = frames - len(loss.lost_frames)
    try:
        await eventually(lambda: _video_frames_received(hub, show_id) >= expected)
    except AssertionError:
        stats = hub.stats()["shows"][show_id]["tracks"]["video"]
        raise AssertionError(f"show {show_id}: {expected} frames expected, {stats}") from None
    await hub.stop(show_id, session.id)  # returns once ShowEnded has gone out
    await publisher.close()  # its encoder would go on costing the next batch CPU
    ended = next(e for e in events.ended if e.show_id == show_id)
    path = Path(ended.recording_path) if ended.recording_path else None
    return RecordedShow(show_id, len(loss.lost), path, loss.first_frame_packets)


def _video_frames_received(hub: LiveHub, show_id: int) -> int:
    video = hub.stats()["shows"][show_id]["tracks"]["video"]
    return video["frames"] + video["frames_skipped"]


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_every_show_is_recorded_whole_when_its_first_packets_are_lost(
    make_hub, events, publisher, codec
):
    hub = make_hub()
    shows: list[RecordedShow] = []
    for batch in range(0, SHOWS_PER_CODEC, PARALLEL):
        shows += await asyncio.gather(
            *(
                record_show(
                    hub, events, _textured(publisher, codec), show_id, _first(_lost(show_id))
                )
                for show_id in range(batch, batch + PARALLEL)
            )
        )

    for show in shows:
        assert show.lost == _lost(show.show_id)
        assert show.first_frame_packets > 3  # losing 1-3 packets left part of the keyframe
        assert show.recording is not None, show
        counters, size, duration = probe(show.recording)
        assert size == (WIDTH, HEIGHT), show
        assert in_order_with_few_gaps(counters), (show, counters)
        if show.lost:
            assert counters[0] > 0, show  # the first keyframe was not recorded: a later one
        # the show's video: from its frame 0 to the last frame that reached the relay
        # before the stop, which is at least the show's length
        assert counters[-1] >= SHOW_FRAMES - 1, (show, counters)
        show_seconds = (counters[-1] + 1) / 30
        assert abs(duration - show_seconds) <= 1.0, (show, duration, show_seconds)


def _lost(show_id: int) -> int:
    return LOST_AT_START[show_id % len(LOST_AT_START)]


def _first(count: int) -> Callable[[int], bool]:
    return lambda index: index < count


def _textured(make: Callable[..., TestPublisher], codec: str, **picture: Any) -> TestPublisher:
    source = make(codec=codec)
    source.video = TexturedCounterTrack(**picture)
    return source


@pytest.fixture
def aiortc_publishers_keep_1024_packets():
    """The test publishers are aiortc senders: size their retransmit history for a
    keyframe of more than 128 packets (see aiortc_hooks.size_sender_history)."""
    previous = aiortc_hooks.size_sender_history(1024)
    yield
    aiortc_hooks.size_sender_history(previous)


async def test_first_keyframe_larger_than_aiortcs_default_history_is_repaired_after_a_loss(
    make_hub, events, publisher, aiortc_publishers_keep_1024_packets
):
    hub = make_hub()
    source = _textured(publisher, "VP8", width=640, height=480, colour=True)

    # The first keyframe's second packet is lost. aiortc sends a frame's packets in one
    # burst, so the relay's NACK for it arrives after the rest of the keyframe: with
    # aiortc's 128 packets kept, packet 1 + 128 would have taken its place.
    show = await record_show(hub, events, source, 1, lambda index: index == 1, frames=45)

    assert show.lost == 1 and show.first_frame_packets > 1 + 128
    assert show.recording is not None
    counters, size, _ = probe(show.recording)
    assert size == (640, 480)
    assert counters[0] == 0  # the first keyframe itself, repaired
