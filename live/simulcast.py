"""A simulcast video track: one ``TrackFanout`` per layer, one layer per viewer.

Every layer is packetized once for all of its viewers, as a single-layer track is, and
all layers carry the same viewer-facing SSRC. What differs per viewer is small and
lives in ``LayeredDownTrack``: its sequence numbers are the layer's plus an offset
fixed when it joined that layer, so a switch continues the viewer's numbering (the
same for a timestamp that would not advance, nudged by a tick).

Timestamps: each layer of a browser publisher has its own random RTP timestamp base.
The first layer that delivers a frame is the reference; any other layer is mapped onto
it from the two layers' Sender Reports (ts_ref = ts_layer + rtp_ref - rtp_layer +
(ntp_layer - ntp_ref) x 90 kHz; within a millisecond, measured on Chromium) before any
of its frames is forwarded, so every layer shares one timeline, the viewers' Sender
Reports hold whatever layer a viewer is on, and a switch keeps A/V sync.

A viewer switches at a keyframe of the target layer (a recent one replayed from the
layer's history, or the next, asked for with a PLI to that layer) and keeps receiving
its current layer until then. Which layer it should be on is its ``LayerController``'s
choice, from the viewer's own feedback (receiver-report loss, NACKs, REMB), capped by
the viewer's quality choice. The recording keeps the layer with the largest picture.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Optional

from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from live.downtrack import DownTrack
from live.keyframes import DEFAULT_MIN_INTERVAL, KeyframeRequester, vp8_dimensions, h264_dimensions
from live.layer_control import LayerController
from live.recorder import Recorder
from live.track_fanout import DEFAULT_REPLAY_WINDOW, TrackFanout

logger = logging.getLogger(__name__)

_NTP_FRACTION = 1 << 32
ACTIVE_WITHIN = 2.0  # seconds: a layer that delivered no frame for longer is inactive
AUDIO_BPS = 64_000  # what the viewer's audio is assumed to take of its link
# Seconds the recording waits, after the first layer's keyframe, for every layer's size
# (browsers key all layers together; one the publisher does not send is not waited for).
RECORDER_WAIT = 2.0
# A browser's REMB is only meaningful when the sender stamps abs-send-time on its
# packets, which the relay does not do yet: measured on loopback with no loss, Chromium's
# REMB swung from 1.5 Mbit/s to 50 kbit/s and moved a viewer from the top layer to the
# bottom. Until the stamp is sent, layers follow loss and NACKs alone.
USE_REMB = False
NACKS_REMEMBERED = 1024  # sequence numbers; a few seconds of the top layer
PAD_PACKETS = 32  # a padding burst repeats at most this many of the newest packets
PAD_BURST = 0.1  # seconds of padding sent at most in one go (after a gap between frames)


class LayeredDownTrack(DownTrack):
    """A viewer of a simulcast track: sequence numbers rewritten to stay continuous
    across layer switches, and retransmissions found in the layer they were sent from."""

    __slots__ = (
        "switching_to",
        "switches",
        "_srtp_protect",
        "_seq_delta",
        "_ts_adjust",
        "_pending_start",
        "_segments",
        "_continue_from",
        "_left_early",
        "_nacked",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.switching_to: Optional[TrackFanout] = None
        self.switches = 0
        self._srtp_protect = self.protect
        self.protect = self._rewrite_and_protect  # what TrackFanout.forward calls
        self._seq_delta = 0
        self._ts_adjust = 0
        self._pending_start: Optional[int] = None
        # (first sequence number sent on it, its layer, sequence offset, timestamp nudge)
        self._segments: list[tuple[int, TrackFanout, int, int]] = []
        # at a switch: the last sequence number and timestamp this viewer was sent
        self._continue_from: Optional[tuple[int, int]] = None
        self._left_early = False  # stopped receiving its layer before the switch landed
        # Sequence numbers NACKed lately: a browser asks again for a packet whose
        # retransmission is late or lost, and one loss must not count as several.
        self._nacked: dict[int, None] = {}

    def mark_started(self, first_sequence: int, track: Optional[TrackFanout] = None) -> bool:
        """Called by the layer that starts sending to this viewer, at a keyframe. A
        switch takes effect only when its target layer calls: the viewer leaves the
        previous layer there, continuing from the last packet that layer sent it."""
        target = self.switching_to
        if target is not None and track is target and target is not self.track:
            previous = self.track
            if not self._left_early:
                self._note_last_sent(previous)
            self._left_early = False
            self.switching_to = None
            self.track = target
            previous.detach(self)
            self.drops = self.nacks = self.retransmits = 0  # counted by the previous layer
            self.switches += 1
            if self.feedback is not None:
                self.feedback.on_switched(self)
        elif track is not None and track is not self.track:
            return False  # a layer this viewer no longer waits for
        self.first_sequence = first_sequence
        self._pending_start = first_sequence
        return True

    def fresh_nacks(self, lost: list[int]) -> int:
        nacked = self._nacked
        fresh = 0
        for sequence_number in lost:
            if sequence_number not in nacked:
                nacked[sequence_number] = None
                fresh += 1
        while len(nacked) > NACKS_REMEMBERED:
            del nacked[next(iter(nacked))]
        return fresh

    @property
    def left_early(self) -> bool:
        return self._left_early

    def leave_early(self) -> None:
        """Stop receiving the current layer now rather than at the switch (a step down:
        the viewer's link is choked by this layer, and the lower layer's keyframe gets
        through sooner on a drained link). Its numbering continues from here."""
        if self.switching_to is None or self._left_early or self.first_sequence is None:
            return
        self._note_last_sent(self.track)
        self._left_early = True
        self.track.detach(self)

    def come_back(self) -> None:
        """Back to the layer it left early (the switch was called off): from that
        layer's next keyframe, numbered on from where it left."""
        self._left_early = False
        self.track.attach(self, replay=False)

    def _note_last_sent(self, layer: TrackFanout) -> None:
        last_sequence = (layer.packetizer.sequence_number - 1 + self._seq_delta) & 0xFFFF
        last_timestamp = layer.last_timestamp
        if last_timestamp is not None:
            self._continue_from = (last_sequence, (last_timestamp + self._ts_adjust) & 0xFFFFFFFF)

    def _begin_segment(self, sequence_number: int, timestamp: int) -> None:
        self._pending_start = None
        if self._continue_from is None:
            self._seq_delta = self._ts_adjust = 0  # the first layer: its own numbering
        else:
            last_sequence, last_timestamp = self._continue_from
            self._continue_from = None
            self._seq_delta = (last_sequence + 1 - sequence_number) & 0xFFFF
            behind = (last_timestamp - timestamp) & 0xFFFFFFFF
            # The new layer's frame must be later than the last one sent: layers share a
            # timeline, so this is at most a tick or two of mapping error.
            self._ts_adjust = behind + 1 if behind < 0x80000000 else 0
        first_out = (sequence_number + self._seq_delta) & 0xFFFF
        self._segments.append((first_out, self.track, self._seq_delta, self._ts_adjust))
        del self._segments[:-4]

    def _rewrite_and_protect(self, packet: bytes) -> bytes:
        if self._pending_start is not None:
            sequence_number = packet[2] << 8 | packet[3]
            if sequence_number == self._pending_start:
                self._begin_segment(sequence_number, int.from_bytes(packet[4:8], "big"))
        delta, adjust = self._seq_delta, self._ts_adjust
        if not delta and not adjust:
            return self._srtp_protect(packet)  # never switched: the layer's own numbering
        out = ((packet[2] << 8 | packet[3]) + delta) & 0xFFFF
        timestamp = (int.from_bytes(packet[4:8], "big") + adjust) & 0xFFFFFFFF if adjust else None
        return self._srtp_protect(_rewritten(packet, out, timestamp))

    def retransmit(self, sequence_number: int) -> None:
        if self._resend(sequence_number):
            self.retransmits += 1

    def pad(self, budget: int) -> int:
        """Send up to ``budget`` bytes of duplicates of the newest packets this viewer
        was sent (a padding probe: the link carries them, the receiver drops them as
        duplicates). Returns the bytes sent."""
        if not self._segments or self._left_early or self.switching_to is not None:
            return 0
        first_out, layer, delta, _ = self._segments[-1]
        if layer is not self.track:
            return 0
        newest = (layer.packetizer.sequence_number - 1 + delta) & 0xFFFF
        span = min(PAD_PACKETS, ((newest - first_out) & 0xFFFF) + 1)
        sent = 0
        for k in range(PAD_PACKETS):
            if sent >= budget:
                break
            size = self._resend((newest - k % span) & 0xFFFF)
            if not size:
                break
            sent += size
        return sent

    def _resend(self, sequence_number: int) -> int:
        """Send again a packet this viewer was sent, found in the layer it came from;
        its size, or 0 if it is no longer there."""
        for first_out, layer, delta, adjust in reversed(self._segments):
            if (sequence_number - first_out) & 0xFFFF < 0x8000:
                packet = layer.history.get((sequence_number - delta) & 0xFFFF)
                if packet is None:
                    return 0
                timestamp = None
                if adjust:
                    timestamp = (int.from_bytes(packet[4:8], "big") + adjust) & 0xFFFFFFFF
                rewritten = _rewritten(packet, sequence_number, timestamp)
                if (rewritten[1] & 0x7F) != self.payload_type:
                    rewritten = bytes((rewritten[0], (rewritten[1] & 0x80) | self.payload_type)) + rewritten[2:]
                try:
                    self.sendto(self._srtp_protect(rewritten), self.addr)
                except BlockingIOError:
                    self.drops += 1
                    return 0
                except Exception as exc:
                    self.fail(exc)
                    return 0
                return len(rewritten)
        return 0


def _rewritten(packet: bytes, sequence_number: int, timestamp: Optional[int]) -> bytes:
    if timestamp is None:
        return packet[:2] + sequence_number.to_bytes(2, "big") + packet[4:]
    return packet[:2] + sequence_number.to_bytes(2, "big") + timestamp.to_bytes(4, "big") + packet[8:]


class SimulcastTrack:
    """Stands where a video ``TrackFanout`` stands for the hub, the viewers and the
    publisher, for a publisher that sends several layers."""

    kind = "video"
    keyframes = None  # per layer, in ``layers``; counted in counters()

    def __init__(
        self,
        *,
        capability: RTCRtpCodecCapability,
        payload_type: int,
        ssrc: int,
        rids: tuple[str, ...],
        keyframe_interval: float = DEFAULT_MIN_INTERVAL,
        replay_window: float = DEFAULT_REPLAY_WINDOW,
    ) -> None:
        self.capability = capability
        self.codec_name = capability.name.lower()
        self.ssrc = ssrc
        self.rids = rids
        self.layers = [
            TrackFanout(
                kind="video",
                capability=capability,
                payload_type=payload_type,
                ssrc=ssrc,
                replay_window=replay_window,
            )
            for _ in rids
        ]
        for layer in self.layers:
            layer.keyframes = KeyframeRequester(layer.ask_source, min_interval=keyframe_interval)
        self._reference: Optional[int] = None  # the layer whose timeline all share
        self._mapped = [False] * len(rids)
        self._reports: dict[int, tuple[float, int]] = {}  # layer -> (NTP seconds, RTP)
        self._dimensions: list[Optional[tuple[int, int]]] = [None] * len(rids)
        self._recorder: Optional[Recorder] = None
        self._recorded: Optional[int] = None
        self._first_size_at: Optional[float] = None
        self._controllers: dict[LayeredDownTrack, LayerController] = {}
        self._rates = [0.0] * len(rids)
        self._octets = [0] * len(rids)
        self._packets = [0] * len(rids)
        self._rates_at = time.monotonic()
        self.frames_unmapped = 0
        self.rembs = 0  # REMBs received from viewers (not acted on while USE_REMB is off)
        self._closed_switches = 0
        self._probing: dict[LayeredDownTrack, float] = {}  # viewers sent padding: last sent at
        self.padding_bytes = 0

    # --- layers ---------------------------------------------------------------------

    def order(self) -> list[int]:
        """Layer indexes from the smallest picture to the largest (rid order until
        every layer's size is known: browsers list them low to high)."""
        if any(d is None for d in self._dimensions):
            return list(range(len(self.layers)))
        return sorted(range(len(self.layers)), key=lambda i: (_area(self._dimensions[i]), i))

    def on_layer_frame(self, index: int, frame: bytes, timestamp: int, now: float) -> None:
        if self._dimensions[index] is None:
            size = _dimensions(self.codec_name, frame)
            if size is not None:
                self._dimensions[index] = size
                if self._first_size_at is None:
                    self._first_size_at = now
        if self._recorded is None and self._recorder is not None and self._first_size_at is not None:
            if all(self._dimensions) or now - self._first_size_at > RECORDER_WAIT:
                self._place_recorder()
        if not self._mapped[index]:
            if self._reference is None:
                self._reference = index
                self._mapped[index] = True
            elif not self._map(index):
                self.frames_unmapped += 1  # its timeline is not known yet: not forwarded
                return
        self.layers[index].on_frame(frame, timestamp, now)
        if self._probing:
            self._pad(self.layers[index], now)

    def _pad(self, layer: TrackFanout, now: float) -> None:
        """Padding for the viewers of this layer whose controller probes the next one,
        paced by the layer's frames (so it never goes out as one burst)."""
        for downtrack, last in list(self._probing.items()):
            if downtrack.track is not layer:
                continue
            controller = self._controllers.get(downtrack)
            rate = controller.want_probe(now) if controller is not None else 0.0
            if not rate:
                del self._probing[downtrack]
                continue
            budget = int(rate / 8 * min(now - last, PAD_BURST))
            sent = downtrack.pad(budget) if budget > 0 else 0
            self._probing[downtrack] = now
            if sent:
                self.padding_bytes += sent
                controller.on_padding_sent(sent * 8, now)

    def layer_report(self, index: int, ntp_timestamp: int, rtp_timestamp: int, now: float) -> None:
        """A publisher Sender Report for a layer's SSRC: maps the layer onto the
        reference timeline if it was not yet, and feeds the viewers' SRs."""
        self._reports[index] = (ntp_timestamp / _NTP_FRACTION, rtp_timestamp)
        if self._mapped[index] or self._map(index):
            self.layers[index].publisher_report(ntp_timestamp, rtp_timestamp, now)

    def _map(self, index: int) -> bool:
        """Put a layer on the reference layer's timeline, if both have a Sender Report."""
        reference = self._reference
        if reference is None or reference not in self._reports or index not in self._reports:
            return False
        if self.layers[reference].rebasing:
            return False  # resumed: the reference's own offset is set by its first frame
        ntp_ref, rtp_ref = self._reports[reference]
        ntp, rtp = self._reports[index]
        offset = self.layers[reference].timestamp_offset + rtp_ref - rtp + round((ntp - ntp_ref) * 90000)
        self.layers[index].map_timestamps(offset & 0xFFFFFFFF)
        self._mapped[index] = True
        return True

    def _place_recorder(self) -> None:
        """The recording takes the largest layer, once: a file keeps one picture size."""
        known = [i for i, d in enumerate(self._dimensions) if d is not None]
        best = max(known, key=lambda i: _area(self._dimensions[i]))
        self.layers[best].recorder = self._recorder
        self._recorded = best
        keyframes = self.layers[best].keyframes
        if keyframes is not None:
            keyframes.request()  # the file starts at a keyframe: ask for one now

    @property
    def recorder(self) -> Optional[Recorder]:
        return self._recorder

    @recorder.setter
    def recorder(self, recorder: Optional[Recorder]) -> None:
        self._recorder = recorder
        if self._recorded is not None:
            self.layers[self._recorded].recorder = recorder

    # --- viewers --------------------------------------------------------------------

    def attach(self, downtrack: DownTrack, *, cap: Optional[int] = None, now: Optional[float] = None) -> None:
        assert isinstance(downtrack, LayeredDownTrack)
        now = time.monotonic() if now is None else now
        count = len(self.layers)
        cap = min(cap, count - 1) if cap is not None else None
        controller = LayerController(count, initial=count - 1 if cap is None else cap, now=now)
        controller.set_cap(cap)
        controller.on_layer_rates([self._rates[i] for i in self.order()], AUDIO_BPS, self._active(now), now)
        self._controllers[downtrack] = controller
        downtrack.feedback = self
        start = self._active_layer(controller.target(now), now)
        layer = self.layers[self.order()[start]]
        downtrack.track = layer
        downtrack.switching_to = None
        layer.attach(downtrack)
        controller.on_switched(start, now)

    def detach(self, downtrack: DownTrack) -> None:
        if isinstance(downtrack, LayeredDownTrack):
            if downtrack.switching_to is not None:
                downtrack.switching_to.cancel_wait(downtrack)
                downtrack.switching_to = None
            self._closed_switches += downtrack.switches
            downtrack.switches = 0
            self._controllers.pop(downtrack, None)
            self._probing.pop(downtrack, None)
        downtrack.track.detach(downtrack)

    def set_cap(self, downtrack: DownTrack, cap: Optional[int]) -> None:
        """The viewer's quality choice: the highest layer it may get (None: any)."""
        controller = self._controllers.get(downtrack)  # type: ignore[call-overload]
        if controller is None:
            return
        cap = min(cap, len(self.layers) - 1) if cap is not None else None
        controller.set_cap(cap)
        self._steer(downtrack, time.monotonic())  # type: ignore[arg-type]

    def layer_of(self, downtrack: DownTrack) -> Optional[int]:
        """The viewer's layer as a quality index (0 the smallest picture)."""
        order = self.order()
        for quality, index in enumerate(order):
            if self.layers[index] is downtrack.track:
                return quality
        return None

    def downtracks(self) -> list[DownTrack]:
        return [d for layer in self.layers for d in layer.downtracks()]

    @property
    def waiting(self) -> int:
        return sum(layer.waiting for layer in self.layers)

    @property
    def needs_keyframe(self) -> bool:
        return any(layer.needs_keyframe for layer in self.layers)

    @property
    def clock(self) -> Any:
        reference = self._reference if self._reference is not None else 0
        return self.layers[reference].clock

    # --- the viewers' feedback (DownTrack.feedback) -----------------------------------

    def on_receiver_report(self, downtrack: DownTrack, fraction_lost: float) -> None:
        controller = self._controllers.get(downtrack)  # type: ignore[call-overload]
        if controller is not None:
            now = time.monotonic()
            controller.on_receiver_report(fraction_lost, now)
            self._steer(downtrack, now)  # type: ignore[arg-type]

    def on_nack(self, downtrack: DownTrack, packets: int) -> None:
        controller = self._controllers.get(downtrack)  # type: ignore[call-overload]
        if controller is not None:
            controller.on_nack(packets, time.monotonic())

    def on_remb(self, downtrack: DownTrack, bitrate: float) -> None:
        self.rembs += 1
        if not USE_REMB:
            return
        controller = self._controllers.get(downtrack)  # type: ignore[call-overload]
        if controller is not None:
            now = time.monotonic()
            controller.on_remb(bitrate, now)
            self._steer(downtrack, now)  # type: ignore[arg-type]

    # --- steering -------------------------------------------------------------------

    def _active(self, now: float) -> list[bool]:
        order = self.order()
        return [
            self._mapped[i] and now - self.layers[i].last_frame_at <= ACTIVE_WITHIN for i in order
        ]

    def _active_layer(self, quality: int, now: float) -> int:
        """``quality`` if that layer is active, else the nearest active one below it
        (above if none), else ``quality``."""
        active = self._active(now)
        for candidate in list(range(quality, -1, -1)) + list(range(quality + 1, len(active))):
            if active[candidate]:
                return candidate
        return quality

    def _steer(self, downtrack: LayeredDownTrack, now: float) -> None:
        controller = self._controllers.get(downtrack)
        if controller is None:
            return
        self.switch(downtrack, self._active_layer(controller.target(now), now), now)
        if downtrack not in self._probing and controller.want_probe(now):
            self._probing[downtrack] = now  # padded from the layer's next frame on

    def switch(self, downtrack: LayeredDownTrack, quality: int, now: float) -> None:
        """Move a viewer to the layer of that quality (0 the smallest picture) at its
        next keyframe; it keeps its current layer until then. The controller's
        choice goes through here; tests and benchmarks may force one."""
        controller = self._controllers.get(downtrack)
        if controller is None:
            return
        target = self.layers[self.order()[quality]]
        if target is downtrack.switching_to:
            return
        if downtrack.first_sequence is None:
            # Nothing sent yet (waiting for its first layer's keyframe): just wait on the
            # other layer instead.
            downtrack.track.cancel_wait(downtrack)
            downtrack.track = target
            controller.on_switched(quality, now)
            target.attach(downtrack)
            return
        if target is downtrack.track:
            if downtrack.switching_to is not None:  # changed its mind before the keyframe
                downtrack.switching_to.cancel_wait(downtrack)
                downtrack.switching_to = None
                if downtrack.left_early:
                    downtrack.come_back()
            return
        if downtrack.switching_to is not None:
            downtrack.switching_to.cancel_wait(downtrack)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("viewer %x: layer %s -> %s (%s)", id(downtrack) & 0xFFFF, self.layer_of(downtrack),
                         quality, controller.reason)
        downtrack.switching_to = target
        target.attach(downtrack, replay=False)  # from the layer's next keyframe, asked for now
        if downtrack.switching_to is target and quality < (self.layer_of(downtrack) or 0):
            downtrack.leave_early()

    def on_switched(self, downtrack: LayeredDownTrack) -> None:
        """A switch landed (the target layer's keyframe went out): the controller judges
        the new layer from here on, not from reports about the old one."""
        controller = self._controllers.get(downtrack)
        quality = self.layer_of(downtrack)
        if controller is not None and quality is not None:
            controller.on_switched(quality, time.monotonic())

    def tick(self, now: float, *, use_publisher_clock: bool) -> None:
        """The hub's housekeeping: viewers' Sender Reports, unanswered keyframe
        requests, the layers' send rates, and each viewer's layer."""
        for layer in self.layers:
            layer.tick(now, use_publisher_clock=use_publisher_clock)
        elapsed = now - self._rates_at
        if elapsed >= 0.5:
            order = self.order()
            sent: dict[int, int] = {}  # packets each layer sent to each of its viewers
            for index in order:
                layer = self.layers[index]
                self._rates[index] = (layer.octets - self._octets[index]) * 8 / elapsed
                self._octets[index] = layer.octets
                sent[id(layer)] = layer.packets - self._packets[index]
                self._packets[index] = layer.packets
            self._rates_at = now
            rates = [self._rates[i] for i in order]
            active = self._active(now)
            for downtrack, controller in list(self._controllers.items()):
                controller.on_layer_rates(rates, AUDIO_BPS, active, now)
                controller.on_packets_sent(sent.get(id(downtrack.track), 0), now)
        for downtrack in list(self._controllers):
            self._steer(downtrack, now)

    # --- what a TrackFanout offers the hub and the publisher --------------------------

    def resume(self) -> None:
        """A new publisher: the reference layer continues the timeline by wall clock
        (TrackFanout.resume), the others are mapped again from the new Sender Reports."""
        for index, layer in enumerate(self.layers):
            layer.resume()
            if index != self._reference:
                self._mapped[index] = False
        self._reports.clear()

    def worst_viewer_loss(self) -> float:
        return max((layer.worst_viewer_loss() for layer in self.layers), default=0.0)

    def counters(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for layer in self.layers:
            for key, value in layer.counters().items():
                totals[key] = totals.get(key, 0) + value
            if layer.keyframes is not None:
                totals["keyframe_requests"] = totals.get("keyframe_requests", 0) + layer.keyframes.requests
                totals["plis_sent"] = totals.get("plis_sent", 0) + layer.keyframes.sent
        totals["layer_switches"] = self._closed_switches + sum(d.switches for d in self._controllers)
        totals["frames_unmapped"] = self.frames_unmapped
        totals["padding_bytes"] = self.padding_bytes
        return totals

    def layer_stats(self) -> list[dict[str, Any]]:
        """Per layer, smallest picture first: size, rate, viewers."""
        return [
            {
                "rid": self.rids[i],
                "size": list(self._dimensions[i]) if self._dimensions[i] else None,
                "kbit_s": round(self._rates[i] / 1000),
                "viewers": len(self.layers[i].downtracks()),
                "active": self._mapped[i] and not math.isinf(self.layers[i].last_frame_at),
            }
            for i in self.order()
        ]

    def close(self) -> None:
        for layer in self.layers:
            layer.close()
        self._controllers.clear()
        self._probing.clear()


def _area(size: Optional[tuple[int, int]]) -> int:
    return size[0] * size[1] if size else 0


def _dimensions(codec_name: str, frame: bytes) -> Optional[tuple[int, int]]:
    if codec_name == "vp8":
        return vp8_dimensions(frame)
    if codec_name == "h264":
        return h264_dimensions(frame)
    return None
