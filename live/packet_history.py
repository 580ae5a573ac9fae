"""What a track sent recently, so a viewer's NACK is answered without the publisher.

LiveKit calls this the sequencer. The relay builds each RTP packet once per track, so
one ring serves every viewer; a retransmission is the same bytes re-protected with the
viewer's SRTP session (aiortc sets ``allow_repeat_tx``).
"""

from __future__ import annotations

from typing import Optional

# 1024 packets: > 2 s of a 4 Mbit/s video track, > 6 s at 1.5 Mbit/s. A NACK older than
# that cannot arrive in time to help the viewer's jitter buffer anyway.
DEFAULT_SIZE = 1024


class PacketHistory:
    __slots__ = ("_mask", "_packets")

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size & (size - 1):
            raise ValueError("size must be a power of two")
        self._mask = size - 1
        self._packets: list[Optional[bytes]] = [None] * size

    def add(self, sequence_number: int, packet: bytes) -> None:
        self._packets[sequence_number & self._mask] = packet

    def get(self, sequence_number: int) -> Optional[bytes]:
        """The RTP packet sent with this sequence number, if still held."""
        packet = self._packets[sequence_number & self._mask]
        if packet is not None and ((packet[2] << 8) | packet[3]) == sequence_number:
            return packet
        return None
