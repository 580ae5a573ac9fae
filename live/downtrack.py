"""One viewer's send path for one track (LiveKit: downtrack.go).

Per packet a viewer costs one SRTP protect and one non-blocking ``sendto`` on a
duplicate of its ICE socket: no task, no queue, no await. The kernel's socket buffer
is the bounded per-viewer queue; when it is full the packet is dropped and counted.
The loop over viewers lives in ``TrackFanout.forward`` so it can hoist lookups.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, Protocol

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

from live.aiortc_hooks import DatagramPath
from live.packetizer import with_payload_type
from live.sender_reports import source_description

if TYPE_CHECKING:
    from live.track_fanout import TrackFanout


class Feedback(Protocol):
    """What a viewer's RTCP says about its link, for whoever picks its layer."""

    def on_receiver_report(self, downtrack: "DownTrack", fraction_lost: float) -> None: ...

    def on_nack(self, downtrack: "DownTrack", packets: int) -> None: ...

    def on_remb(self, downtrack: "DownTrack", bitrate: float) -> None: ...

    def on_switched(self, downtrack: Any) -> None: ...


# UDP segmentation offload (Linux >= 4.18): a frame's packets to one viewer, all the
# same size but the last, go out in one sendmsg() and the kernel (or the NIC) splits
# them. On this machine's kernel that halves the cost of sending a packet.
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
MAX_SEGMENTS = 40  # keeps a batch under 64 KB; kernels accept 64 (128 since 5.x)
_segment_options: dict[int, list[tuple[int, int, bytes]]] = {}


def segment_option(size: int) -> list[tuple[int, int, bytes]]:
    option = _segment_options.get(size)
    if option is None:
        option = _segment_options[size] = [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))]
    return option


def segmentable(packets: list[bytes]) -> bool:
    """Whether packets can go as one UDP GSO batch: all the same size but the last,
    which may be shorter (VP8 frames packetize that way; H.264 FU-A usually not)."""
    count = len(packets)
    if count < 2:
        return False
    size = len(packets[0])
    for index in range(1, count - 1):
        if len(packets[index]) != size:
            return False
    return len(packets[-1]) <= size


def send_segmented(downtrack: "DownTrack", protected: list[bytes]) -> None:
    """One sendmsg per MAX_SEGMENTS packets; falls back to sendto for good if the
    kernel refuses GSO. BlockingIOError propagates (the caller counts the drop)."""
    option = segment_option(len(protected[0]))
    sendmsg = downtrack.sendmsg
    addr = downtrack.addr
    try:
        for start in range(0, len(protected), MAX_SEGMENTS):
            sendmsg(protected[start : start + MAX_SEGMENTS], option, 0, addr)  # type: ignore[misc]
    except BlockingIOError:
        raise
    except OSError:
        downtrack.sendmsg = None
        sendto = downtrack.sendto
        for packet in protected:
            sendto(packet, addr)


class DownTrack:
    __slots__ = (
        "track",
        "payload_type",
        "protect",
        "sendto",
        "sendmsg",
        "addr",
        "first_sequence",
        "fraction_lost",
        "drops",
        "nacks",
        "retransmits",
        "failed",
        "feedback",
        "_protect_rtcp",
        "_sdes",
        "_on_heard",
        "_on_failure",
    )

    def __init__(
        self,
        track: TrackFanout,
        *,
        payload_type: int,
        cname: str,
        srtp: Any,
        path: DatagramPath,
        on_heard: Callable[[], None],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.track = track
        self.payload_type = payload_type
        self.protect = srtp.protect
        self.use_path(path)
        self.first_sequence: Optional[int] = None  # first packet this viewer was sent
        self.fraction_lost = 0  # from the viewer's receiver reports, /256
        self.drops = 0
        self.nacks = 0
        self.retransmits = 0
        self.failed = False
        # Simulcast: told of the viewer's REMB, receiver reports and NACKs (the layer
        # choice); None for a single-layer track.
        self.feedback: Optional[Feedback] = None
        self._protect_rtcp = srtp.protect_rtcp
        self._sdes = source_description(track.ssrc, cname)
        self._on_heard = on_heard
        self._on_failure = on_failure

    def use_path(self, path: DatagramPath) -> None:
        self.sendto = path.sendto
        self.sendmsg = path.sendmsg
        self.addr = path.remote_addr

    def fail(self, exc: BaseException) -> None:
        if not self.failed:
            self.failed = True
            self._on_failure(exc)

    def send_packets(self, packets: list[bytes]) -> None:
        """Send a few packets outside the fan-out loop (keyframe replay)."""
        protect, sendto, addr = self.protect, self.sendto, self.addr
        pt = self.payload_type
        for packet in packets:
            if (packet[1] & 0x7F) != pt:
                packet = with_payload_type(packet, pt)
            try:
                sendto(protect(packet), addr)
            except BlockingIOError:
                self.drops += 1
            except Exception as exc:
                self.fail(exc)
                return

    def send_sender_report(self, report: bytes) -> None:
        try:
            self.sendto(self._protect_rtcp(report + self._sdes), self.addr)
        except BlockingIOError:
            self.drops += 1
        except Exception as exc:
            self.fail(exc)

    def retransmit(self, sequence_number: int) -> None:
        first = self.first_sequence
        if first is None or (sequence_number - first) & 0xFFFF >= 0x8000:
            return  # never sent to this viewer
        packet = self.track.history.get(sequence_number)
        if packet is None:
            return
        self.retransmits += 1
        self.send_packets([packet])

    async def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        """Installed as the aiortc sender's ``_handle_rtcp_packet`` (aiortc_hooks)."""
        self._on_heard()
        feedback = self.feedback
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            ssrc = self.track.ssrc
            for report in packet.reports:
                if report.ssrc == ssrc:
                    self.fraction_lost = report.fraction_lost
                    if feedback is not None:
                        feedback.on_receiver_report(self, report.fraction_lost / 256)
        elif isinstance(packet, RtcpRtpfbPacket):
            if packet.fmt == RTCP_RTPFB_NACK:
                self.nacks += 1
                for sequence_number in packet.lost:
                    self.retransmit(sequence_number)
                if feedback is not None:
                    feedback.on_nack(self, self.fresh_nacks(packet.lost))
        elif isinstance(packet, RtcpPsfbPacket):
            if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                self.track.viewer_lost_picture()
            elif packet.fmt == RTCP_PSFB_APP and feedback is not None and packet.fci[:4] == b"REMB":
                try:
                    bitrate, _ = unpack_remb_fci(packet.fci)
                except Exception:
                    return  # a malformed REMB is ignored
                feedback.on_remb(self, bitrate)

    def fresh_nacks(self, lost: list[int]) -> int:
        """How many of a NACK's sequence numbers count as new losses (see LayeredDownTrack)."""
        return len(lost)

    def mark_started(self, first_sequence: int, track: Optional["TrackFanout"] = None) -> bool:
        """``track`` starts sending to this viewer at ``first_sequence``; False if the
        viewer declines (a simulcast viewer no longer waiting for that layer)."""
        self.first_sequence = first_sequence
        return True
