"""Real aiortc peers around a real LiveHub, all in the test process.

Run inside the loopback-only network namespace (``bash tests/run tests/live``): aioice
skips 127.0.0.1, and 127.0.0.2 keeps the media on this machine.

The test publisher sends synthetic video whose frames carry a 16-bit counter drawn as
16 black/white bands, so a viewer that decodes a frame can read back which frame it is,
and Opus audio (aiortc's silent ``AudioStreamTrack``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Optional

import av
import pytest
from aiortc import (
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

from live.hub import LiveHub, Session, ShowEnded, ShowStarted

WIDTH, HEIGHT = 320, 240
BANDS = 16
BAND = WIDTH // BANDS
WHITE, BLACK = 0xEB, 0x10


def counter_frame(counter: int) -> av.VideoFrame:
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma = frame.planes[0]
    row = b"".join(
        bytes((WHITE if counter >> (BANDS - 1 - i) & 1 else BLACK,)) * BAND
        for i in range(BANDS)
    )
    luma.update((row + bytes(luma.line_size - len(row))) * HEIGHT)
    for chroma in frame.planes[1:]:
        chroma.update(b"\x80" * chroma.buffer_size)
    return frame


def read_counter(frame: av.VideoFrame) -> int:
    luma = frame.planes[0]
    data = bytes(luma)
    start = (frame.height // 2) * luma.line_size
    counter = 0
    for i in range(BANDS):
        counter = counter << 1 | (data[start + i * BAND + BAND // 2] > 0x80)
    return counter


class CounterTrack(VideoStreamTrack):
    """30 fps video; frame n shows the number n."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = counter_frame(self.sent)
        self.sent += 1
        frame.pts = pts
        frame.time_base = time_base
        return frame


class _Waiters:
    def __init__(self) -> None:
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def check(self) -> None:
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)
                self._waiters.remove((predicate, future))

    async def until(self, predicate: Callable[[], bool], timeout: float) -> None:
        if predicate():
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            if (predicate, future) in self._waiters:
                self._waiters.remove((predicate, future))


class TestPublisher:
    __test__ = False

    def __init__(self, codec: str = "VP8", audio: bool = True, video: bool = True) -> None:
        self.pc = RTCPeerConnection()
        self.video = CounterTrack() if video else None
        self.audio = AudioStreamTrack() if audio else None
        self.codec = codec
        self.session: Optional[Session] = None

    async def offer(self) -> str:
        if self.video is not None:
            transceiver = self.pc.addTransceiver(self.video, direction="sendonly")
            preferred = [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.name == self.codec
            ]
            transceiver.setCodecPreferences(preferred)
        if self.audio is not None:
            self.pc.addTransceiver(self.audio, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def publish(self, hub: LiveHub, show_id: int) -> Session:
        self.session = await hub.publish(show_id, await self.offer())
        await self.pc.setRemoteDescription(RTCSessionDescription(self.session.answer_sdp, "answer"))
        return self.session

    async def close(self) -> None:
        await self.pc.close()


class TestViewer:
    """Decodes what it receives; records the video counters and audio frame count."""

    __test__ = False

    def __init__(self, kinds: tuple[str, ...] = ("video", "audio")) -> None:
        self.pc = RTCPeerConnection()
        self.kinds = kinds
        self.counters: list[int] = []
        self.video_pts: list[int] = []  # each decoded frame's RTP timestamp (aiortc's pts)
        self.audio_frames = 0
        self.ended: set[str] = set()
        self.session: Optional[Session] = None
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters = _Waiters()
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._waiters.check)

    async def offer(self) -> str:
        for kind in self.kinds:
            self.pc.addTransceiver(kind, direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def join(self, hub: LiveHub, show_id: int) -> Session:
        self.session = await hub.play(show_id, await self.offer())
        await self.pc.setRemoteDescription(RTCSessionDescription(self.session.answer_sdp, "answer"))
        return self.session

    def _on_track(self, track: Any) -> None:
        self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    self.counters.append(read_counter(frame))
                    self.video_pts.append(frame.pts)
                else:
                    self.audio_frames += 1
                self._waiters.check()
        except MediaStreamError:
            self.ended.add(track.kind)
            self._waiters.check()

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        await self._waiters.until(predicate, timeout)

    async def frames(self, count: int, timeout: float = 10.0) -> None:
        await self.until(lambda: len(self.counters) >= count, timeout)

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Events:
    """The hub's show events (started, reconnecting, resumed, ended), awaitable."""

    def __init__(self) -> None:
        self.all: list[ShowStarted | ShowEnded] = []
        self._waiters = _Waiters()

    async def __call__(self, event: ShowStarted | ShowEnded) -> None:
        self.all.append(event)
        self._waiters.check()

    @property
    def ended(self) -> list[ShowEnded]:
        return [e for e in self.all if isinstance(e, ShowEnded)]

    async def show_ended(self, timeout: float = 10.0) -> ShowEnded:
        await self._waiters.until(lambda: bool(self.ended), timeout)
        return self.ended[0]

    async def next(self, kind: type, after: int = 0, timeout: float = 10.0) -> Any:
        """The first event of type ``kind`` among ``all[after:]``, waiting for it."""
        def found() -> bool:
            return any(isinstance(e, kind) for e in self.all[after:])

        await self._waiters.until(found, timeout)
        return next(e for e in self.all[after:] if isinstance(e, kind))


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    return tmp_path / "recordings"


@pytest.fixture
async def make_hub(events: Events, recordings: Path) -> AsyncIterator[Callable[..., LiveHub]]:
    hubs: list[LiveHub] = []

    def make(**options: Any) -> LiveHub:
        options.setdefault("recordings_dir", recordings)
        options.setdefault("on_event", events)
        hub = LiveHub(**options)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.close()


@pytest.fixture
async def hub(make_hub: Callable[..., LiveHub]) -> LiveHub:
    return make_hub()


@pytest.fixture
async def peers() -> AsyncIterator[list[Any]]:
    """Test peers to close at the end, whatever the test did."""
    created: list[Any] = []
    yield created
    await asyncio.gather(*(p.close() for p in created), return_exceptions=True)


@pytest.fixture
def publisher(peers: list[Any]) -> Callable[..., TestPublisher]:
    def make(**options: Any) -> TestPublisher:
        peer = TestPublisher(**options)
        peers.append(peer)
        return peer

    return make


@pytest.fixture
def viewer(peers: list[Any]) -> Callable[..., TestViewer]:
    def make(**options: Any) -> TestViewer:
        peer = TestViewer(**options)
        peers.append(peer)
        return peer

    return make


@pytest.fixture
def simulcast_publisher(peers: list[Any]) -> Callable[..., Any]:
    """SimulcastPublisher(**options) (tests/live/simulcast_publisher.py), closed at the end."""
    from tests.live.simulcast_publisher import SimulcastPublisher  # it imports this module

    def make(**options: Any) -> SimulcastPublisher:
        peer = SimulcastPublisher(**options)
        peers.append(peer)
        return peer

    return make


@pytest.fixture
def layer_viewer(peers: list[Any]) -> Callable[..., Any]:
    """A TestViewer that reads the counter at any layer's size (and records the sizes)."""
    from tests.live.simulcast_publisher import LayerViewer

    def make(**options: Any) -> LayerViewer:
        peer = LayerViewer(**options)
        peers.append(peer)
        return peer

    return make


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """For hub state that no event announces (e.g. a reaped viewer): poll briefly."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def in_order_with_few_gaps(counters: list[int], allowed_missing: int = 2) -> bool:
    increasing = all(b > a for a, b in zip(counters, counters[1:]))
    missing = sum(b - a - 1 for a, b in zip(counters, counters[1:]))
    return increasing and missing <= allowed_missing
