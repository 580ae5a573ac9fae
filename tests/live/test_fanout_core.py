"""The single-layer fan-out without a network: keyframe start, replay, NACKs from the
history, payload types per viewer, GSO batches and failed sockets (issue 18: the relay
core tested as LiveKit tests its forwarder). The viewer's socket and SRTP are the
outside edge here, as in test_simulcast_fanout.py."""

from __future__ import annotations

import struct
import time
from typing import Any

from aiortc import RTCRtpSender

from live.downtrack import DownTrack
from live.track_fanout import TrackFanout
from tests.live.test_simulcast_fanout import ClearText, Wire, vp8_frame

SIZE = (320, 180)


class GsoWire(Wire):
    """A socket that takes UDP GSO batches: one sendmsg per batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def sendmsg(self, buffers: list[bytes], ancillary: Any, flags: int, addr: Any) -> None:  # type: ignore[override]
        self.batches.append(len(buffers))
        self.sent.extend(buffers)


class BrokenWire(Wire):
    def sendto(self, data: bytes, addr: Any) -> None:
        raise ConnectionResetError("the viewer's socket is gone")


class Source:
    """Feeds encoded VP8 frames at 30 fps; counts the keyframes asked of it."""

    def __init__(self, track: TrackFanout) -> None:
        self.track = track
        self.frame = 0
        self.asked = 0
        track.source = self.ask

    def ask(self) -> None:
        self.asked += 1

    def send(self, *, keyframe: bool = False, length: int = 3000) -> None:
        self.track.on_frame(vp8_frame(keyframe, SIZE, length), 1000 + self.frame * 3000, time.monotonic())
        self.frame += 1


def make_track() -> TrackFanout:
    from live.keyframes import KeyframeRequester

    vp8 = next(c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "VP8")
    track = TrackFanout(kind="video", capability=vp8, payload_type=96, ssrc=4321)
    track.keyframes = KeyframeRequester(track.ask_source, min_interval=0.0)
    return track


def viewer(track: TrackFanout, wire: Wire | None = None, *, payload_type: int = 96) -> tuple[DownTrack, Wire]:
    wire = wire or Wire()
    wire.failures = []  # what the viewer was told of its socket failing
    downtrack = DownTrack(
        track, payload_type=payload_type, cname="v", srtp=ClearText(), path=wire,
        on_heard=lambda: None, on_failure=wire.failures.append,
    )
    track.attach(downtrack)
    return downtrack, wire


def sequence_numbers(wire: Wire) -> list[int]:
    return [sequence for sequence, _ in wire.headers()]


def test_a_viewer_before_any_keyframe_waits_for_one_and_it_is_asked_for():
    track = make_track()
    source = Source(track)
    downtrack, wire = viewer(track)

    source.send()  # the publisher's first frame is a delta: nobody can start on it
    assert wire.sent == [] and track.waiting == 1 and source.asked >= 1
    keyframe_starts = track.packetizer.sequence_number
    source.send(keyframe=True)
    source.send()

    assert track.waiting == 0
    assert downtrack.first_sequence == keyframe_starts == struct.unpack("!H", wire.sent[0][2:4])[0]


async def test_a_stream_that_starts_without_its_keyframe_asks_for_one_at_its_first_frame():
    # The publisher's first keyframe was lost whole: the relay sees delta frames it
    # cannot use and nobody is waiting yet. It asks at once, not at the next
    # housekeeping tick (up to a second later), so the recording starts that much
    # sooner; later frames add no PLI while one is out.
    track = make_track()
    track.keyframes.min_interval = 0.5
    source = Source(track)

    source.send()
    assert source.asked == 1 and track.frames_skipped == 1
    for _ in range(5):
        source.send()
    assert source.asked == 1 and track.frames_skipped == 6
    source.send(keyframe=True)
    assert track.frames == 1


def test_a_viewer_joining_mid_stream_gets_the_last_keyframe_replayed_then_the_live_frames():
    track = make_track()
    source = Source(track)
    early, early_wire = viewer(track)
    source.send(keyframe=True)
    source.send()
    source.send()

    late, late_wire = viewer(track)  # joins after the keyframe: replayed from the history
    source.send()

    assert late_wire.sent == early_wire.sent  # the same packets, from the same keyframe on
    numbers = sequence_numbers(late_wire)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_a_nack_is_answered_from_the_history_and_a_packet_never_sent_to_the_viewer_is_not():
    track = make_track()
    source = Source(track)
    source.send(keyframe=True)
    source.send()
    downtrack, wire = viewer(track)
    source.send()
    source.send()

    lost = sequence_numbers(wire)[-1]
    original = wire.sent[-1]
    before_joining = (downtrack.first_sequence - 1) & 0xFFFF
    downtrack.retransmit(lost)
    downtrack.retransmit(before_joining)  # is in the history, but was never this viewer's

    assert wire.sent[-1] == original and downtrack.retransmits == 1


def test_a_viewer_with_another_payload_type_gets_the_same_packets_renumbered_for_it():
    track = make_track()
    source = Source(track)
    _, ours = viewer(track)
    _, theirs = viewer(track, payload_type=120)
    source.send(keyframe=True)

    assert len(ours.sent) == len(theirs.sent) > 1
    for a, b in zip(ours.sent, theirs.sent):
        assert b[1] & 0x7F == 120 and a[1] & 0x7F == 96
        assert a[:1] + a[2:] == b[:1] + b[2:] and a[1] & 0x80 == b[1] & 0x80  # marker kept


def test_a_frame_of_equal_sized_packets_goes_to_a_gso_socket_in_one_sendmsg():
    track = make_track()
    source = Source(track)
    _, wire = viewer(track, GsoWire())
    source.send(keyframe=True, length=6000)  # several full packets and a shorter last one

    assert wire.batches == [len(wire.sent)] and len(wire.sent) > 2


def test_a_viewer_whose_socket_fails_is_detached_and_told_while_the_others_go_on():
    track = make_track()
    source = Source(track)
    broken, broken_wire = viewer(track, BrokenWire())
    healthy, wire = viewer(track)
    source.send(keyframe=True)
    source.send()

    assert broken not in track.downtracks() and healthy in track.downtracks()
    assert len(broken_wire.failures) == 1
    assert len(wire.headers()) >= 2
