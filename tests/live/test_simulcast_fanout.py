"""The simulcast fan-out without a network: one layer per viewer, switches at keyframes
with sequence numbers and timestamps that continue, NACKs answered from the layer the
packet was sent from. (LiveKit tests its forwarder the same way: forwarder_test.go.)

The viewer's socket and SRTP are the outside edge here: a recorder of what would be
sent, and an identity "protection", so the RTP headers can be read back.
"""

from __future__ import annotations

import struct
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

from live.simulcast import LayeredDownTrack, SimulcastTrack

SIZES = [(80, 45), (160, 90), (320, 180)]  # rids q, h, f: smallest picture first
CLOCK = 90000


class Wire:
    """Stands in for the viewer's ICE socket: keeps the datagrams."""

    remote_addr = ("127.0.0.2", 9)
    sendmsg = None

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append(data)

    def headers(self) -> list[tuple[int, int]]:
        """(sequence number, timestamp) of every RTP packet sent, in order."""
        return [struct.unpack("!HI", p[2:8]) for p in self.sent if 96 <= (p[1] & 0x7F) <= 127]


class ClearText:
    """Identity SRTP, so the test reads the headers it would protect."""

    @staticmethod
    def protect(packet: bytes) -> bytes:
        return packet

    @staticmethod
    def protect_rtcp(packet: bytes) -> bytes:
        return packet


def vp8_frame(keyframe: bool, size: tuple[int, int], length: int = 3000) -> bytes:
    if keyframe:
        width, height = size
        header = bytes((0x10, 0x02, 0x00)) + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    else:
        header = bytes((0x11, 0x02, 0x00))
    return header + bytes(length - len(header))


def make_track() -> SimulcastTrack:
    vp8 = next(c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "VP8")
    return SimulcastTrack(capability=vp8, payload_type=96, ssrc=1234, rids=("q", "h", "f"))


def viewer(track: SimulcastTrack, *, cap: int | None = None) -> tuple[LayeredDownTrack, Wire]:
    wire = Wire()
    downtrack = LayeredDownTrack(
        track, payload_type=96, cname="v", srtp=ClearText(), path=wire,
        on_heard=lambda: None, on_failure=lambda exc: None,
    )
    track.attach(downtrack, cap=cap, now=0.0)
    return downtrack, wire


class Publisher:
    """Feeds the three layers as a browser would: each its own timestamp base, the
    same capture instants, Sender Reports mapping each to one wall clock."""

    BASES = (1_000_000, 3_000_000_000, 77)

    def __init__(self, track: SimulcastTrack) -> None:
        self.track = track
        self.frame = 0
        for index, base in enumerate(self.BASES):  # SRs for t = 0: rtp = base
            track.layer_report(index, 3_900_000_000 << 32, base, 0.0)

    def send(self, *, keyframes: tuple[int, ...] = ()) -> None:
        now = 1.0 + self.frame / 30
        for index, base in enumerate(self.BASES):
            timestamp = (base + self.frame * 3000) & 0xFFFFFFFF
            self.track.on_layer_frame(index, vp8_frame(index in keyframes, SIZES[index]), timestamp, now)
        self.frame += 1


def started() -> tuple[SimulcastTrack, Publisher]:
    track = make_track()
    publisher = Publisher(track)
    publisher.send(keyframes=(0, 1, 2))  # every layer keys at the start, as Chromium does
    return track, publisher


def continuous(headers: list[tuple[int, int]]) -> bool:
    sequence_ok = all((b[0] - a[0]) & 0xFFFF == 1 for a, b in zip(headers, headers[1:]))
    timestamps_ok = all(0 <= (b[1] - a[1]) & 0xFFFFFFFF < 0x80000000 for a, b in zip(headers, headers[1:]))
    return sequence_ok and timestamps_ok


async def test_every_layer_is_mapped_onto_one_timeline_from_the_sender_reports():
    track, publisher = started()
    publisher.send()

    offsets = {layer.timestamp_offset for layer in track.layers}
    last = {(layer.timestamp_offset + Publisher.BASES[i]) & 0xFFFFFFFF for i, layer in enumerate(track.layers)}
    assert len(last) == 1, offsets  # the same capture instant has the same timestamp on every layer


async def test_a_viewer_gets_one_layer_on_the_tracks_ssrc():
    track, publisher = started()
    downtrack, wire = viewer(track, cap=1)
    publisher.send(keyframes=(0, 1, 2))
    for _ in range(5):
        publisher.send()

    assert track.layer_of(downtrack) == 1
    packets = [p for p in wire.sent if (p[1] & 0x7F) == 96]
    assert packets and all(struct.unpack("!I", p[8:12])[0] == 1234 for p in packets)
    # one layer only: 6 frames of 3 packets each (3000-byte frames), not 3 layers' worth
    assert len(packets) == 6 * 3


async def test_a_switch_waits_for_the_target_layers_keyframe_and_continues_the_numbering():
    track, publisher = started()
    downtrack, wire = viewer(track, cap=0)
    publisher.send(keyframes=(0, 1, 2))
    for _ in range(3):
        publisher.send()

    track.switch(downtrack, 2, now=2.0)
    publisher.send()  # no keyframe on the top layer yet: still the bottom one
    assert track.layer_of(downtrack) == 0
    publisher.send(keyframes=(2,))
    for _ in range(3):
        publisher.send()

    assert track.layer_of(downtrack) == 2 and downtrack.switches == 1
    assert continuous(wire.headers())


async def test_switching_down_and_up_again_keeps_one_continuous_stream():
    track, publisher = started()
    downtrack, wire = viewer(track)
    publisher.send(keyframes=(0, 1, 2))
    for quality in (1, 0, 2, 1):
        track.switch(downtrack, quality, now=2.0)
        publisher.send(keyframes=(0, 1, 2))
        publisher.send()
        assert track.layer_of(downtrack) == quality

    assert downtrack.switches == 4
    assert continuous(wire.headers())


async def test_a_step_down_stops_the_choking_layer_at_once_and_numbering_continues_at_the_lower_keyframe():
    track, publisher = started()
    downtrack, wire = viewer(track)  # on the top layer
    publisher.send(keyframes=(0, 1, 2))
    publisher.send()

    track.switch(downtrack, 0, now=2.0)
    sent = len(wire.sent)
    publisher.send()  # no bottom keyframe yet: nothing more of the top layer either
    publisher.send()
    assert len(wire.sent) == sent
    publisher.send(keyframes=(0,))

    assert track.layer_of(downtrack) == 0 and len(wire.sent) > sent
    assert continuous(wire.headers())


async def test_a_step_down_called_off_before_its_keyframe_comes_back_at_its_layers_next_keyframe():
    track, publisher = started()
    downtrack, wire = viewer(track)
    publisher.send(keyframes=(0, 1, 2))
    track.switch(downtrack, 0, now=2.0)
    publisher.send()

    track.switch(downtrack, 2, now=2.1)  # back to the layer it left
    publisher.send(keyframes=(0,))  # the bottom keyframe no longer matters
    sent = len(wire.sent)
    publisher.send()
    assert len(wire.sent) == sent  # still waiting for a top keyframe
    publisher.send(keyframes=(2,))

    assert track.layer_of(downtrack) == 2 and len(wire.sent) > sent
    assert continuous(wire.headers())


async def test_a_nack_after_a_switch_is_answered_from_the_layer_the_packet_came_from():
    track, publisher = started()
    downtrack, wire = viewer(track, cap=0)
    publisher.send(keyframes=(0, 1, 2))
    publisher.send()
    sent_on_bottom = wire.headers()
    lost_sequence, lost_timestamp = sent_on_bottom[-2]
    original = next(p for p in wire.sent if struct.unpack("!H", p[2:4])[0] == lost_sequence)
    track.switch(downtrack, 2, now=2.0)
    publisher.send(keyframes=(2,))
    assert track.layer_of(downtrack) == 2

    before = len(wire.sent)
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=1234)
    nack.lost = [lost_sequence]
    downtrack.retransmit(lost_sequence)

    [resent] = wire.sent[before:]
    assert resent == original
    assert downtrack.retransmits == 1


async def test_a_viewer_leaving_in_the_middle_of_a_switch_is_forgotten_by_both_layers():
    track, publisher = started()
    downtrack, wire = viewer(track, cap=0)
    publisher.send(keyframes=(0, 1, 2))
    track.switch(downtrack, 2, now=2.0)

    track.detach(downtrack)
    publisher.send(keyframes=(0, 1, 2))

    assert track.downtracks() == [] and track.waiting == 0
    assert track.layer_of(downtrack) is None or downtrack.switches == 0


async def test_the_recording_follows_the_largest_picture():
    class Recording:
        def __init__(self) -> None:
            self.frames: list[bytes] = []

        def write(self, kind: str, frame: bytes, timestamp: int, keyframe: bool, now: float) -> None:
            self.frames.append(frame)

    track = make_track()
    recording = Recording()
    track.recorder = recording  # type: ignore[assignment]
    publisher = Publisher(track)
    publisher.send(keyframes=(0, 1, 2))
    publisher.send()

    assert recording.frames[0][6:10] == struct.pack("<HH", 320, 180)
    assert len(recording.frames) == 2  # the top layer's frames only


async def test_frames_of_a_layer_without_a_sender_report_wait_until_it_is_mapped():
    track = make_track()
    track.layer_report(0, 3_900_000_000 << 32, 5, 0.0)  # only the bottom layer has an SR
    track.on_layer_frame(0, vp8_frame(True, SIZES[0]), 5, 1.0)
    track.on_layer_frame(2, vp8_frame(True, SIZES[2]), 999, 1.0)

    assert track.frames_unmapped == 1
    track.layer_report(2, 3_900_000_000 << 32, 999, 1.0)
    track.on_layer_frame(2, vp8_frame(True, SIZES[2]), 999 + 3000, 1.1)
    assert track.frames_unmapped == 1
    assert (999 + track.layers[2].timestamp_offset) & 0xFFFFFFFF == 5


async def test_a_viewer_moved_before_its_first_keyframe_waits_on_the_new_layer_and_others_still_start():
    track, publisher = started()
    for _ in range(15):  # the last keyframe is now older than the replay window
        publisher.send()
    moved, moved_wire = viewer(track)  # both wait for the top layer's next keyframe
    staying, staying_wire = viewer(track)

    track.switch(moved, 0, now=1.6)
    publisher.send(keyframes=(2,))  # the top layer's keyframe comes first
    publisher.send(keyframes=(0,))  # then the bottom one's

    assert track.layer_of(moved) == 0 and track.layer_of(staying) == 2
    assert moved in track.layers[0].downtracks() and moved not in track.layers[2].downtracks()
    assert staying in track.layers[2].downtracks()
    assert len(moved_wire.headers()) == 3  # the bottom layer's keyframe only (3 packets)
    assert continuous(staying_wire.headers()) and len(staying_wire.headers()) == 6


async def test_a_packet_nacked_again_counts_once_toward_the_viewers_loss():
    track, publisher = started()
    downtrack, wire = viewer(track)

    assert downtrack.fresh_nacks([10, 11]) == 2
    assert downtrack.fresh_nacks([11, 12]) == 1  # 11 asked for again: its repair was late


async def test_padding_repeats_only_packets_the_viewer_was_sent_newest_first():
    track, publisher = started()
    downtrack, wire = viewer(track, cap=0)
    publisher.send(keyframes=(0, 1, 2))
    publisher.send()
    sent = list(wire.sent)

    padded = downtrack.pad(2500)

    extra = wire.sent[len(sent):]
    assert extra and set(extra) <= set(sent)  # duplicates: the receiver drops them
    assert extra[0] == sent[-1]
    assert padded == sum(len(p) for p in extra) and padded - len(extra[-1]) < 2500
