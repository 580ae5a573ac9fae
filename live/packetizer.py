"""Encoded frames to RTP packets, once per relayed track for all of its viewers.

LiveKit rewrites sequence numbers and timestamps per subscriber (rtpmunger.go) because
it forwards the publisher's packets. This relay repacketizes the frames aiortc
reassembled, so it owns the sequence numbers: every viewer of a track gets the same
SSRC, sequence numbers and (the publisher's own) timestamps, and the bytes of each
packet are built exactly once. RTP header extensions are left out: viewers demultiplex
by the SSRC announced in their answer, and REMB/abs-send-time would only feed a
bandwidth estimate the relay does not act on.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from live import aiortc_hooks

_HEADER = struct.Struct("!BBHII")
_VERSION_2 = 0x80
_MARKER = 0x80


def _payloader(codec_name: str) -> Callable[[bytes, int], list[bytes]]:
    name = codec_name.lower()
    if name == "vp8":
        return aiortc_hooks.packetize_vp8
    if name == "h264":
        return lambda frame, picture_id: aiortc_hooks.packetize_h264(frame)
    return lambda frame, picture_id: [frame]  # Opus: one frame, one packet (RFC 7587)


class Packetizer:
    __slots__ = ("payload_type", "ssrc", "sequence_number", "_payloader", "_picture_id", "_video")

    def __init__(self, codec_name: str, payload_type: int, ssrc: int, *, video: bool) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        # Lower half, like aiortc: an early wrap confuses some receivers' SRTP index guess.
        self.sequence_number = random.randrange(1 << 15)
        self._payloader = _payloader(codec_name)
        self._picture_id = random.randrange(1 << 15)
        self._video = video

    def packetize(self, frame: bytes, timestamp: int) -> list[bytes]:
        """RTP packets for one frame; for video the marker bit is set on the last one."""
        payloads = self._payloader(frame, self._picture_id)
        self._picture_id = (self._picture_id + 1) & 0x7FFF
        pack = _HEADER.pack
        ssrc = self.ssrc
        pt = self.payload_type
        sequence_number = self.sequence_number
        marked = len(payloads) - 1 if self._video else -1
        packets = []
        for index, payload in enumerate(payloads):
            second = pt | _MARKER if index == marked else pt
            packets.append(pack(_VERSION_2, second, sequence_number, timestamp, ssrc) + payload)
            sequence_number = (sequence_number + 1) & 0xFFFF
        self.sequence_number = sequence_number
        return packets


def with_payload_type(packet: bytes, payload_type: int) -> bytes:
    """The same packet for a viewer that negotiated another payload type number."""
    return packet[:1] + bytes(((packet[1] & _MARKER) | payload_type,)) + packet[2:]
