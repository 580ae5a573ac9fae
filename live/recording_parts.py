"""A show recorded in parts, joined into one file that plays as one.

A show is recorded in one file while one node holds it, through every reconnect of its
publisher. When the node itself dies and another takes the show over, the new node
records a new part. At the end the parts are remuxed (never decoded) into one file,
each part's media at its offset from the show's start, so the replay's pins (times
from the show's start) stay where they were. The time between two parts (the show was
reconnecting) holds no media; players keep the last picture.

A part cut off by its node's death (no final cluster, no cues) is read up to where it
breaks off. A part that cannot be read at all is left out and logged, and the rest
still make the recording.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import av

logger = logging.getLogger(__name__)


def join_parts(parts: Sequence[tuple[Path, float]], out: Path) -> Optional[Path]:
    """Remux ``parts`` ((file, seconds from the show's start), in any order) into
    ``out``. Blocking: run it on a worker thread. None if no part could be read."""
    container: Any = None
    streams: dict[str, Any] = {}
    last_pts: dict[str, int] = {}
    try:
        for path, offset in sorted(parts, key=lambda part: part[1]):
            try:
                source = av.open(str(path))
            except (OSError, av.FFmpegError) as exc:
                logger.warning("recording part %s left out: %s", path, exc)
                continue
            with source:
                if container is None:
                    container = av.open(str(out), "w", format=_format(out))
                    for stream in source.streams:
                        if stream.type in ("video", "audio") and stream.type not in streams:
                            streams[stream.type] = container.add_stream_from_template(stream)
                _copy(source, container, streams, offset, last_pts, path)
    finally:
        if container is not None:
            container.close()
    if container is None or not last_pts:
        out.unlink(missing_ok=True)
        return None
    return out


def _copy(source: Any, container: Any, streams: dict[str, Any], offset: float,
          last_pts: dict[str, int], path: Path) -> None:
    try:
        for packet in source.demux():
            target = streams.get(packet.stream.type)
            if target is None or packet.pts is None or packet.size == 0:
                continue  # another kind of stream, or the demuxer's flush packet
            pts = packet.pts + round(offset / packet.time_base)
            kind = packet.stream.type
            if pts <= last_pts.get(kind, -1):
                continue  # overlaps the previous part: the muxer takes time forward only
            last_pts[kind] = pts
            packet.pts = packet.dts = pts
            packet.stream = target
            container.mux(packet)
    except (av.FFmpegError, EOFError) as exc:
        logger.warning("recording part %s read up to a break: %s", path, exc)


def _format(path: Path) -> str:
    return "matroska" if path.suffix == ".mkv" else "webm"
