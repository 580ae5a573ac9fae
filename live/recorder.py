"""Recording: remux the show's encoded frames into WebM (VP8+Opus) or Matroska (H.264).

The same frames the viewers get are muxed with PyAV, never decoded or encoded. Muxing
and file I/O run on a worker thread fed by a bounded queue, so a slow disk costs
recorded frames (counted in ``dropped``), never the event loop. After a dropped video
frame the recorder skips video until the next keyframe, so the file stays decodable.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
from pathlib import Path
from typing import Any, Optional

import av

from live.keyframes import h264_dimensions, vp8_dimensions

logger = logging.getLogger(__name__)

QUEUE_FRAMES = 600  # ~5 s of 30 fps video plus 50 fps audio
_CLOCK_RATE = {"video": 90000, "audio": 48000}
_MUX_CODEC = {"vp8": "vp8", "h264": "h264", "opus": "opus"}
_STOP = object()


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
        self.dropped = 0
        self.written = {"video": 0, "audio": 0}
        self.error: Optional[str] = None
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
        if kind == "video":
            if self._video_gap and not keyframe:
                self.dropped += 1
                return
        elif self._video_gap and self.video_codec is not None and not self.written["video"]:
            return  # audio before the first keyframe would start the file without a picture
        try:
            self._queue.put_nowait((kind, frame, timestamp, keyframe, now))
        except queue.Full:
            self.dropped += 1
            if kind == "video":
                self._video_gap = True
            return
        if kind == "video":
            self._video_gap = False
            self.written["video"] += 1
        else:
            self.written["audio"] += 1

    async def close(self) -> Optional[Path]:
        """Finish the file; the path if it holds any media, else None."""
        if not self._closed:
            self._closed = True
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._queue.put, _STOP)
            await loop.run_in_executor(None, self._thread.join)
        if self.error is None and self.path.exists() and any(self.written.values()):
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
                    container, streams = self._open(frame)
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

    def _open(self, first_frame: bytes) -> tuple[Any, dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container_format = "matroska" if self.video_codec == "h264" else "webm"
        container = av.open(str(self.path), "w", format=container_format)
        streams = {}
        if self.video_codec is not None:
            size = (
                vp8_dimensions(first_frame)
                if self.video_codec == "vp8"
                else h264_dimensions(first_frame)
            )
            width, height = size or (0, 0)
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
