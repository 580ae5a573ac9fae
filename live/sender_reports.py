"""RTCP Sender Reports for viewers: the RTP-time <-> wallclock mapping of each track.

Browsers align audio and video by the NTP time each track's SR gives its RTP clock.
The relay forwards the publisher's RTP timestamps unchanged (``keep_publisher_timestamps``),
so once the publisher has sent an SR for every track of the show, viewers get the
publisher's own mapping, extrapolated to now: exactly the A/V sync the publisher meant.
Before that (the first second or so, or publishers that send no SR) the mapping is
anchored at the arrival of each track's latest frame, which is within a frame interval
and the network jitter of the truth.
"""

from __future__ import annotations

import time
from typing import Optional

from aiortc.rtp import RtcpSdesPacket, RtcpSenderInfo, RtcpSourceInfo, RtcpSrPacket

_NTP_UNIX_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_NTP_FRACTION = 1 << 32


class SenderClock:
    """The RTP clock of one relayed track. Times are ``time.monotonic()`` seconds."""

    __slots__ = ("clock_rate", "_frame_ts", "_frame_at", "_report", "_wall_offset")

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self._frame_ts: Optional[int] = None
        self._frame_at = 0.0
        self._report: Optional[tuple[float, int, float]] = None
        self._wall_offset = time.time() - time.monotonic()

    def frame_sent(self, rtp_timestamp: int, now: float) -> None:
        self._frame_ts = rtp_timestamp
        self._frame_at = now

    def publisher_report(self, ntp_timestamp: int, rtp_timestamp: int, now: float) -> None:
        self._report = (ntp_timestamp / _NTP_FRACTION, rtp_timestamp, now)

    @property
    def has_publisher_report(self) -> bool:
        return self._report is not None

    def mapping(self, now: float, *, use_publisher: bool) -> Optional[tuple[int, int]]:
        """(64-bit NTP timestamp, 32-bit RTP timestamp) for the instant ``now``."""
        if use_publisher and self._report is not None:
            ntp_seconds, rtp, at = self._report
        elif self._frame_ts is not None:
            at = self._frame_at
            ntp_seconds = at + self._wall_offset + _NTP_UNIX_OFFSET
            rtp = self._frame_ts
        else:
            return None
        elapsed = now - at
        ntp = int((ntp_seconds + elapsed) * _NTP_FRACTION) & 0xFFFFFFFFFFFFFFFF
        return ntp, (rtp + round(elapsed * self.clock_rate)) & 0xFFFFFFFF


def sender_report(ssrc: int, ntp: int, rtp: int, packets: int, octets: int) -> bytes:
    return bytes(
        RtcpSrPacket(
            ssrc=ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp,
                rtp_timestamp=rtp,
                packet_count=packets & 0xFFFFFFFF,
                octet_count=octets & 0xFFFFFFFF,
            ),
        )
    )


def source_description(ssrc: int, cname: str) -> bytes:
    """SDES with the CNAME the viewer's answer announced, sent with every SR."""
    chunk = RtcpSourceInfo(ssrc=ssrc, items=[(1, cname.encode("utf8"))])
    return bytes(RtcpSdesPacket(chunks=[chunk]))
