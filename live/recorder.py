"""Recording: remux the show's encoded frames into WebM (VP8+Opus) or Matroska (H.264).

The same frames the viewers get are muxed with PyAV, never decoded or encoded. Muxing
and file I/O run on a worker thread fed by a bounded queue, so a slow disk costs
recorded frames (counted in ``dropped``), never the event loop. After a dropped video
frame the recorder skips video until the next keyframe, so the file stays decodable.

The file starts (and video restarts) only at a keyframe whose header gives the frame
size: the container's header needs it, and libavformat refuses a 0x0 video stream
(EINVAL from ``avformat_write_header``), which used to lose the whole recording when
the publisher's first packet was lost and the first "keyframe" had no header. A
recording that fails anyway says so (``failed``, ``error``) instead of going quiet.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import av

from live.keyframes import h264_dimensions, vp8_dimensions

logger = logging.getLogger(__name__)

QUEUE_FRAMES = 600  # ~5 s of 30 fps video plus 50 fps audio
WRITE_THROUGH = {"flush_packets": "1", "cluster_time_limit": "500"}  # libavformat options
_CLOCK_RATE = {"video": 90000, "audio": 48000}
_MUX_CODEC = {"vp8": "vp8", "h264": "h264", "opus": "opus"}
_STOP = object()
_FRAME_SIZE: dict[str, Callable[[bytes], Optional[tuple[int, int]]]] = {
    "vp8": vp8_dimensions,
    "h264": h264_dimensions,
}


def _no_size(frame: bytes) -> Optional[tuple[int, int]]:
    return None


def recording_suffix(video_codec: Optional[str]) -> str:
    return ".mkv" if video_codec == "h264" else ".webm"


class _Unwrap:
    """32-bit RTP timestamps to a monotonic 64-bit count."""

    __slots__ = ("_last", "_high")

    def __init__(self) -> None:
        self._last: Optional[int] = None
        self._high = 0

    def __call__(self, timestamp: int) -> int:
        if self._last is not None:
            delta = (timestamp - self._last) & 0xFFFFFFFF
            if delta < 0x80000000 and timestamp < self._last:
                self._high += 1 << 32
            elif delta >= 0x80000000 and timestamp > self._last:
                return self._high - (1 << 32) + timestamp  # late, from before a wrap
        self._last = timestamp
        return self._high + timestamp


class Recorder:
    def __init__(
        self, path: Path, *, video_codec: Optional[str], audio_codec: Optional[str]
    ) -> None:
        self.path = path
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        self.dropped = 0  # frames not recorded: queue full, or video waiting for a keyframe
        self.frames_without_header = 0  # video keyframes skipped: no readable frame size
        self.written = {"video": 0, "audio": 0}
        self.error: Optional[str] = None
        # the size in the file's header, from the keyframe it starts at
        self.frame_size: Optional[tuple[int, int]] = None
        self._read_size = _FRAME_SIZE.get(video_codec or "", _no_size)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._video_gap = video_codec is not None  # the file starts at a keyframe
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"recorder-{path.name}", daemon=True)
        self._thread.start()

    # --- event loop side ------------------------------------------------------------

    def write(self, kind: str, frame: bytes, timestamp: int, keyframe: bool, now: float) -> None:
        """Queue one encoded frame; never blocks."""
        if self._closed:
            return
        if kind == "video" and self._video_gap:
            if not keyframe:
                self.dropped += 1
                return
            size = self._read_size(frame)
            if size is None:
                # A keyframe without its header (the publisher's first packet was lost
                # and never asked for again): neither the muxer nor a player can start
                # there. The next keyframe will do.
                self.dropped += 1
                self.frames_without_header += 1
                return
            if self.frame_size is None:
                self.frame_size = size  # read by the worker once it gets this frame
        elif kind != "video" and self.video_codec is not None and not self.written["video"]:
            return  # audio before the first keyframe would start the file without a picture
        try:
            self._queue.put_nowait((kind, frame, timestamp, keyframe, now))
        except queue.Full:
            self.dropped += 1
            if kind == "video":
                self._video_gap = True
                if not self.written["video"]:
                    self.frame_size = None  # the file will start at another keyframe
            return
        if kind == "video":
            self._video_gap = False
            self.written["video"] += 1
        else:
            self.written["audio"] += 1

    @property
    def failed(self) -> bool:
        """The recording is lost: muxing failed, or (known at ``close``) video came but
        never a keyframe the file could start at. For the hub's failure counter."""
        return self.error is not None

    async def close(self) -> Optional[Path]:
        """Finish the file; the path if it holds any media, else None (nothing came, or
        the recording failed)."""
        if not self._closed:
            self._closed = True
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._queue.put, _STOP)
            await loop.run_in_executor(None, self._thread.join)
            if self.error is None and self.video_codec is not None and not self.written["video"]:
                if self.dropped:
                    self.error = (
                        f"no video keyframe with a readable frame size came: {self.dropped} "
                        f"video frames skipped, {self.frames_without_header} of them "
                        "keyframes without a header"
                    )
        if not self.failed and self.path.exists() and any(self.written.values()):
            return self.path
        return None

    # --- worker thread --------------------------------------------------------------

    def _run(self) -> None:
        container = None
        streams: dict[str, Any] = {}
        unwrap = {"video": _Unwrap(), "audio": _Unwrap()}
        first_timestamp: dict[str, int] = {}
        offset: dict[str, int] = {}
        last_pts: dict[str, int] = {}
        origin: Optional[float] = None
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                if self.error is not None:
                    continue
                kind, frame, timestamp, keyframe, now = item
                if container is None:
                    container, streams = self._open()
                    origin = now
                stream = streams.get(kind)
                if stream is None:
                    continue
                clock_rate = _CLOCK_RATE[kind]
                extended = unwrap[kind](timestamp)
                if kind not in first_timestamp:
                    # each track starts at its arrival time relative to the file start
                    first_timestamp[kind] = extended
                    offset[kind] = round((now - origin) * clock_rate)
                pts = extended - first_timestamp[kind] + offset[kind]
                if pts <= last_pts.get(kind, -1):
                    continue  # a reordered or repeated frame would make the muxer fail
                last_pts[kind] = pts
                packet = av.Packet(frame)
                packet.stream = stream
                packet.time_base = fractions.Fraction(1, clock_rate)
                packet.pts = packet.dts = pts
                packet.is_keyframe = keyframe
                container.mux(packet)
        except Exception as exc:  # keep the show going without its recording
            self.error = f"{type(exc).__name__}: {exc}"
            logger.exception("recording %s failed", self.path)
            self._drain()
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:
                    logger.exception("closing recording %s failed", self.path)

    def _open(self) -> tuple[Any, dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container_format = "matroska" if self.video_codec == "h264" else "webm"
        # Written through as it goes, in clusters of at most 0.5 s: a node killed
        # mid-show (no close, no cues) leaves a file that plays up to its last second,
        # which becomes a part of the show's recording (live/recording_parts.py).
        container = av.open(str(self.path), "w", format=container_format, options=WRITE_THROUGH)
        streams = {}
        if self.video_codec is not None:
            # write() queues video only from a keyframe whose size it read, and audio
            # only after that, so the size is known here and never 0x0
            assert self.frame_size is not None
            width, height = self.frame_size
            streams["video"] = container.add_mux_stream(
                _MUX_CODEC[self.video_codec], width=width, height=height
            )
        if self.audio_codec is not None:
            streams["audio"] = container.add_mux_stream(_MUX_CODEC[self.audio_codec], rate=48000)
        return container, streams

    def _drain(self) -> None:
        while True:
            if self._queue.get() is _STOP:
                return
