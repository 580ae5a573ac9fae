"""One published track fanned out to every viewer of the show (LiveKit: receiver.go).

Per frame: detect a keyframe, packetize once, remember the packets for NACKs, then for
each viewer SRTP-protect the packets and send them (one GSO ``sendmsg`` per viewer when
the frame's packets allow it, else ``sendto`` each). Video viewers start at a keyframe:
from the packet history if the last one is recent (``replay_window``), otherwise they
wait and a keyframe is requested from the publisher (coalesced, rate-limited).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Optional

from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from live.downtrack import DownTrack, segmentable, send_segmented
from live.keyframes import KeyframeRequester, keyframe_detector
from live.packet_history import PacketHistory
from live.packetizer import Packetizer, with_payload_type
from live.recorder import Recorder
from live.sender_reports import SenderClock, sender_report

DEFAULT_REPLAY_WINDOW = 0.35  # seconds; see docs/relay.md "Joining"


class TrackFanout:
    def __init__(
        self,
        *,
        kind: str,
        capability: RTCRtpCodecCapability,
        payload_type: int,
        ssrc: int,
        keyframes: Optional[KeyframeRequester] = None,
        recorder: Optional[Recorder] = None,
        replay_window: float = DEFAULT_REPLAY_WINDOW,
    ) -> None:
        self.kind = kind
        self.capability = capability
        self.codec_name = capability.name.lower()
        self.ssrc = ssrc
        self.keyframes = keyframes
        # Asks the current publisher for a keyframe; None while the show has none (it
        # is reconnecting). Set by the ingest that feeds this track, replaced on resume.
        self.source: Optional[Callable[[], None]] = None
        self.recorder = recorder
        self.replay_window = replay_window
        self.packetizer = Packetizer(self.codec_name, payload_type, ssrc, video=kind == "video")
        self.history = PacketHistory()
        self.clock = SenderClock(capability.clockRate)
        self._canonical_pt = payload_type
        self._is_keyframe = keyframe_detector(self.codec_name)
        # viewers receiving, grouped by their payload type number; viewers waiting for a
        # keyframe
        self._groups: dict[int, list[DownTrack]] = {}
        self._waiting: list[DownTrack] = []
        # video starts, and restarts after unrepaired publisher loss, at a keyframe
        self._needs_keyframe = kind == "video"
        self._last_keyframe_sequence: Optional[int] = None
        self._last_keyframe_at = -math.inf
        # Resuming after the publisher came back: the new publisher's RTP timestamps
        # start anywhere, so they are shifted to continue ours (viewers see one stream).
        self._timestamp_offset = 0
        self._rebase = False
        self._last_timestamp: Optional[int] = None  # last frame forwarded, as sent
        self._last_frame_at = -math.inf
        # counters
        self.frames = 0
        self.keyframes_seen = 0
        self.frames_skipped = 0  # waiting for a keyframe after publisher-side loss
        self.packets = 0  # packets built (once for all viewers)
        self.octets = 0
        self.packets_sent = 0  # packets handed to viewers' sockets
        self.bytes_sent = 0
        self._closed_drops = 0
        self._closed_retransmits = 0
        self._closed_nacks = 0

    # --- viewers --------------------------------------------------------------------

    def attach(self, downtrack: DownTrack, *, replay: bool = True) -> None:
        """Start sending to a viewer whose DTLS is up. ``replay=False``: not from the
        last keyframe in the history, only from the next one (a simulcast viewer
        switching layers has seen later pictures than that keyframe)."""
        if self.kind != "video":
            if downtrack.mark_started(self.packetizer.sequence_number, self):
                self._add(downtrack)
        elif not (replay and self._replay_last_keyframe(downtrack)):
            self._waiting.append(downtrack)
            if self.keyframes is not None:
                self.keyframes.request()

    def detach(self, downtrack: DownTrack) -> None:
        found = False
        group = self._groups.get(downtrack.payload_type)
        if group is not None and downtrack in group:
            found = True
            group.remove(downtrack)
            if not group:
                del self._groups[downtrack.payload_type]
        if downtrack in self._waiting:
            found = True
            self._waiting.remove(downtrack)
        if not found:
            return
        self._closed_drops += downtrack.drops
        self._closed_retransmits += downtrack.retransmits
        self._closed_nacks += downtrack.nacks

    def cancel_wait(self, downtrack: DownTrack) -> None:
        """A viewer that was to start at this track's next keyframe no longer will (a
        simulcast viewer that changed its target layer before it came)."""
        if downtrack in self._waiting:
            self._waiting.remove(downtrack)

    def downtracks(self) -> list[DownTrack]:
        return [d for group in self._groups.values() for d in group]

    @property
    def last_frame_at(self) -> float:
        """When a frame was last forwarded (monotonic; -inf before the first)."""
        return self._last_frame_at

    @property
    def timestamp_offset(self) -> int:
        return self._timestamp_offset

    @property
    def last_timestamp(self) -> Optional[int]:
        """The timestamp of the last frame forwarded, as sent (None before one)."""
        return self._last_timestamp

    @property
    def rebasing(self) -> bool:
        """Resumed, and the new publisher's first frame has not come yet."""
        return self._rebase

    def map_timestamps(self, offset: int) -> None:
        """Shift this track's timestamps onto another timeline from now on (a simulcast
        layer onto its reference layer)."""
        self._timestamp_offset = offset
        self._rebase = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def needs_keyframe(self) -> bool:
        """Video is held until a keyframe (start, publisher-side loss, resume)."""
        return self._needs_keyframe

    def ask_source(self) -> None:
        """The KeyframeRequester's PLI: to whichever publisher feeds the track now."""
        if self.source is not None:
            self.source()

    def resume(self) -> None:
        """A new publisher feeds this track from now on (the old one was lost). Viewers
        keep their SSRC and sequence numbers (the packetizer runs on); the next frame's
        timestamp is rebased to continue ours; video waits for the new keyframe."""
        self._rebase = True
        if self.kind == "video":
            self._needs_keyframe = True
            self._last_keyframe_sequence = None  # never replay the old publisher's picture

    def viewer_lost_picture(self) -> None:
        if self.keyframes is not None:
            self.keyframes.request()

    def publisher_lost_packets(self) -> None:
        """aiortc's jitter buffer dropped packets it could not repair: the frames after
        the gap reference a picture nobody has, so video stops until the next keyframe
        (a frozen picture rather than a smeared one)."""
        if self.kind == "video":
            self._needs_keyframe = True
            if self.keyframes is not None:
                self.keyframes.request()

    def _add(self, downtrack: DownTrack) -> None:
        self._groups.setdefault(downtrack.payload_type, []).append(downtrack)

    def _replay_last_keyframe(self, downtrack: DownTrack) -> bool:
        first = self._last_keyframe_sequence
        if first is None or time.monotonic() - self._last_keyframe_at > self.replay_window:
            return False
        end = self.packetizer.sequence_number
        packets = []
        sequence_number = first
        while sequence_number != end:
            packet = self.history.get(sequence_number)
            if packet is None:
                return False
            packets.append(packet)
            sequence_number = (sequence_number + 1) & 0xFFFF
        if not downtrack.mark_started(first, self):
            return True  # declined: not this track's viewer any more
        downtrack.send_packets(packets)
        self.packets_sent += len(packets)
        self._add(downtrack)
        return True

    # --- media ----------------------------------------------------------------------

    def on_frame(self, frame: bytes, timestamp: int, now: float) -> None:
        """A reassembled frame from the publisher (called on the event loop)."""
        if self._rebase:
            self._rebase_timestamps(timestamp, now)
        if self._timestamp_offset:
            timestamp = (timestamp + self._timestamp_offset) & 0xFFFFFFFF
        keyframe = self._is_keyframe(frame)
        if self._needs_keyframe:
            if not keyframe:
                self.frames_skipped += 1
                # Asked at once, not at the next housekeeping tick (up to 1 s away):
                # the requester rate-limits, so this costs a comparison per frame.
                if self.keyframes is not None:
                    self.keyframes.request()
                return
            self._needs_keyframe = False
        self.frames += 1
        packets = self.packetizer.packetize(frame, timestamp)
        if not packets:
            return
        first_sequence = (packets[0][2] << 8) | packets[0][3]
        history_add = self.history.add
        sequence_number = first_sequence
        for packet in packets:
            history_add(sequence_number, packet)
            sequence_number = (sequence_number + 1) & 0xFFFF
        self.packets += len(packets)
        self.octets += len(frame)
        self.clock.frame_sent(timestamp, now)
        self._last_timestamp = timestamp
        self._last_frame_at = now

        if keyframe and self.kind == "video":
            self.keyframes_seen += 1
            self._last_keyframe_sequence = first_sequence
            self._last_keyframe_at = now
            if self.keyframes is not None:
                self.keyframes.keyframe_seen()
            if self._waiting:
                # Swapped out first: starting a simulcast viewer here detaches it from
                # another layer, which must not touch the list being walked.
                waiting, self._waiting = self._waiting, []
                for downtrack in waiting:
                    if downtrack.mark_started(first_sequence, self):
                        self._add(downtrack)

        self.forward(packets)
        if self.recorder is not None:
            self.recorder.write(self.kind, frame, timestamp, keyframe, now)

    def _rebase_timestamps(self, timestamp: int, now: float) -> None:
        """The first frame of a resumed publisher: continue our timeline from the last
        frame forwarded, advanced by the wall-clock time the show was without one, so
        the viewers' jitter buffers and the recording see the gap as time that passed."""
        self._rebase = False
        if self._last_timestamp is None:
            self._timestamp_offset = 0  # nothing was forwarded yet: nothing to continue
            return
        elapsed = round((now - self._last_frame_at) * self.clock.clock_rate)
        self._timestamp_offset = (self._last_timestamp + max(elapsed, 1) - timestamp) & 0xFFFFFFFF

    def publisher_report(self, ntp_timestamp: int, rtp_timestamp: int, now: float) -> None:
        """The publisher's Sender Report, in our (possibly rebased) RTP time."""
        if self._rebase:
            return  # a resumed publisher's clock is not mapped onto ours yet
        rtp = (rtp_timestamp + self._timestamp_offset) & 0xFFFFFFFF
        self.clock.publisher_report(ntp_timestamp, rtp, now)

    def forward(self, packets: list[bytes]) -> None:
        """The hot loop: per viewer, protect and send each packet."""
        failed: Optional[list[tuple[DownTrack, BaseException]]] = None
        sent = 0
        size = 0
        for packet in packets:
            size += len(packet)
        batch = segmentable(packets)
        for payload_type, group in self._groups.items():
            if payload_type != self._canonical_pt:
                variant = [with_payload_type(p, payload_type) for p in packets]
            else:
                variant = packets
            for downtrack in group:
                protect = downtrack.protect
                try:
                    if batch and downtrack.sendmsg is not None:
                        send_segmented(downtrack, [protect(packet) for packet in variant])
                    else:
                        sendto = downtrack.sendto
                        addr = downtrack.addr
                        for packet in variant:
                            sendto(protect(packet), addr)
                except BlockingIOError:
                    downtrack.drops += 1  # the rest of this frame is lost to this viewer
                except Exception as exc:
                    if failed is None:
                        failed = []
                    failed.append((downtrack, exc))
            sent += len(group)
        self.packets_sent += sent * len(packets)
        self.bytes_sent += sent * size
        if failed:
            for downtrack, error in failed:
                self.detach(downtrack)
                downtrack.fail(error)

    # --- RTCP -----------------------------------------------------------------------

    def tick(self, now: float, *, use_publisher_clock: bool) -> None:
        """The hub's housekeeping: Sender Reports, and a keyframe request repeated while
        viewers wait or video is held (a PLI the publisher did not answer)."""
        self.send_sender_reports(now, use_publisher_clock=use_publisher_clock)
        if (self._waiting or self._needs_keyframe) and self.keyframes is not None:
            self.keyframes.request()

    def send_sender_reports(self, now: float, *, use_publisher_clock: bool) -> None:
        mapping = self.clock.mapping(now, use_publisher=use_publisher_clock)
        if mapping is None:
            return
        report = sender_report(self.ssrc, mapping[0], mapping[1], self.packets, self.octets)
        for downtrack in self.downtracks():
            downtrack.send_sender_report(report)

    def worst_viewer_loss(self) -> float:
        """The highest fraction lost any viewer reported in its last receiver report."""
        return max((d.fraction_lost for d in self.downtracks()), default=0) / 256

    def counters(self) -> dict[str, int]:
        live = self.downtracks() + self._waiting
        return {
            "frames": self.frames,
            "keyframes": self.keyframes_seen,
            "frames_skipped": self.frames_skipped,
            "packets_built": self.packets,
            "packets_forwarded": self.packets_sent,
            "bytes_forwarded": self.bytes_sent,
            "drops": self._closed_drops + sum(d.drops for d in live),
            "nacks": self._closed_nacks + sum(d.nacks for d in live),
            "retransmits": self._closed_retransmits + sum(d.retransmits for d in live),
        }

    def close(self) -> None:
        for downtrack in self.downtracks() + self._waiting:
            self.detach(downtrack)
        if self.keyframes is not None:
            self.keyframes.close()
