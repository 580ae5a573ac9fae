"""A test publisher that sends its video as simulcast layers, the way Chromium does.

aiortc cannot send simulcast, so this builds it by hand, after the prototype of the
simulcast research (issue 13):

- The offer is aiortc's, with its video section rewritten as Chromium writes it for
  ``sendEncodings``: no ``a=ssrc`` lines, the rid and repaired-rid extmaps, one
  ``a=rid:<r> send`` per layer and ``a=simulcast:send r1;r2;r3``.
- aiortc's own video sender stays idle. Each layer has its own aiortc ``Vp8Encoder``,
  SSRC (and RTX SSRC), random RTP timestamp base and sequence numbers, and its own
  entry on the transport's RTP router, so the relay's RTCP for that SSRC (RR, NACK,
  PLI, FIR, REMB) reaches it.
- Like Chromium, packets carry mid and rid (RTX packets: mid and repaired rid) until an
  RR covers their SSRC (``rid_until_report=False``: on every packet); abs-send-time is
  on every packet. A Sender Report per layer SSRC goes out about once a second, mapping
  every layer's timestamps to one wall clock. A NACK is answered by retransmission on
  the media SSRC (``rtx=True``: RTX on the layer's RTX SSRC), a PLI or FIR by a
  keyframe on every layer, as libvpx does in Chromium (``keyframe_on_pli="layer"``:
  that layer only). Audio is aiortc's silent Opus track through its normal sender.
- The answer decides what is sent, as in a browser: the layers its
  ``a=simulcast:recv`` lists and does not pause, with rid. An answer without simulcast
  (the relay before it received layers) gets the first layer alone, without rid, as
  Chromium then sends its first encoding. ``send_unanswered_layers=True`` sends every
  layer with its rid whatever the answer says, as a broken publisher would.

Every frame shows its number as black/white bands (like the counter of
``tests/live/conftest.py``, but two rows of 8 so that it survives VP8 at small sizes),
the same number on every layer: ``read_layer_counter`` reads it back from a decoded
frame of any layer (``LayerViewer`` does), so a viewer's frame width says which layer
it gets and the counter says whether it missed frames across a layer switch.

The banded frames are tiny (one RTP packet each, keyframes included, up to 320x180);
``textured=True`` fills the chroma planes with fresh noise each frame so that frames
span several packets (320x180: ~6, keyframes up to ~17; 80x45: 2), as real video does.

``Layer`` holds each layer's counters (frames, keyframes, PLIs, NACKs, RRs, SRs);
``drop(rid, n)`` loses a layer's next packets on the way, to draw NACKs.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import os
import random
import re
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import av
from aiortc import (
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
    clock,
    sdp,
)
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    wrap_rtx,
)

from live import aiortc_hooks
from live.hub import LiveHub, Session
from live.sdp import answered_rids
from tests.live.conftest import TestViewer

logger = logging.getLogger(__name__)

# aiortc internals this publisher reaches (its idle sender, RTCP per layer SSRC, raw
# RTP) go through live/aiortc_hooks.py: keep_sender_idle, route_rtcp_to, send_rtp.

RTP_STREAM_ID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RTP_STREAM_ID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
# Chromium's ids; aiortc's own video offer uses 1 (mid) and 3 (abs-send-time).
RID_EXTENSION_ID = 10
REPAIRED_RID_EXTENSION_ID = 11

# Chromium's order: rid "q" (a quarter), "h" (half), "f" (full), smallest first.
DEFAULT_LAYERS: tuple[tuple[str, int, int], ...] = (("q", 80, 45), ("h", 160, 90), ("f", 320, 180))
_BANDS_PER_ROW = 8
WHITE, BLACK = 0xEB, 0x10
CLOCK_RATE = 90000
HISTORY = 1024  # packets kept per layer for NACKs: ~3 s of these small layers
_RID = re.compile(r"[A-Za-z0-9_-]{1,16}")


def layer_counter_frame(counter: int, width: int, height: int) -> av.VideoFrame:
    """Frame ``counter`` (16 bits) at any size: the top half shows bits 15-8 and the
    bottom half bits 7-0, as 8 white (1) or black (0) bands of width // 8 pixels.

    Not conftest's single row of 16 bands: at 160x90 those are 10 pixels wide, and
    aiortc's VP8 settings (denoiser plus static threshold) then leave a changed band
    un-updated for a frame in about 1 frame of 30 (11 of 300 here). Eight bands a row
    read back exactly at 80x45, 160x90 and 320x180 (0 of 4000 frames each) on a quiet
    machine; on a loaded one a band was still seen un-updated (CI read 280 as 284). So
    the bands carry the counter's Gray code, in which consecutive frames differ in one
    bit: a band left from the previous frame reads back as that frame, never as a
    number far off."""
    band = width // _BANDS_PER_ROW
    gray = counter ^ counter >> 1
    half = height // 2
    frame = av.VideoFrame(width, height, "yuv420p")
    luma = frame.planes[0]
    rows = []
    for bits in (gray >> 8 & 0xFF, gray & 0xFF):
        row = b"".join(
            bytes((WHITE if bits >> (_BANDS_PER_ROW - 1 - i) & 1 else BLACK,)) * band
            for i in range(_BANDS_PER_ROW)
        )
        rows.append(row + bytes(luma.line_size - len(row)))
    luma.update(rows[0] * half + rows[1] * (height - half))
    for chroma in frame.planes[1:]:
        chroma.update(b"\x80" * chroma.buffer_size)
    return frame


def read_layer_counter(frame: av.VideoFrame) -> int:
    """The counter of a decoded ``layer_counter_frame``, whatever its size."""
    band = frame.width // _BANDS_PER_ROW
    half = frame.height // 2
    luma = frame.planes[0]
    data = bytes(luma)
    gray = 0
    for y in (half // 2, half + (frame.height - half) // 2):
        start = y * luma.line_size
        for i in range(_BANDS_PER_ROW):
            gray = gray << 1 | (data[start + i * band + band // 2] > 0x80)
    counter, shift = gray, gray >> 1
    while shift:
        counter ^= shift
        shift >>= 1
    return counter


@dataclass(eq=False)
class Layer:
    """One simulcast layer: what it is, what it sent and what the relay asked of it."""

    rid: str
    width: int
    height: int
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    rtx_ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    sending: bool = False  # decided by the answer
    with_rid: bool = False  # its packets carry its rid (until an RR, see rid_until_report)
    frames_sent: int = 0
    keyframes_sent: int = 0
    packets_sent: int = 0
    octets_sent: int = 0  # payload bytes, as SRs count them
    rid_packets_sent: int = 0  # packets that carried the rid extension
    sender_reports_sent: int = 0
    reports_received: int = 0  # RR/SR report blocks about this layer's SSRC
    plis_received: int = 0
    firs_received: int = 0
    nacks_received: int = 0  # NACK packets
    packets_nacked: int = 0  # sequence numbers they asked for
    retransmissions: int = 0  # packets resent (RTX or not)
    packets_dropped: int = 0  # left unsent by drop(), as if lost on the way
    rembs_received: int = 0
    rtx_reported: bool = False
    # sending state
    drop_next: int = 0
    timestamp_base: int = field(default_factory=lambda: random.getrandbits(32))
    sequence_number: int = field(default_factory=lambda: random.randrange(1 << 15))
    rtx_sequence_number: int = field(default_factory=lambda: random.randrange(1 << 15))
    keyframe_requested: bool = False
    encoder: Vp8Encoder = field(default_factory=Vp8Encoder, repr=False)
    history: dict[int, RtpPacket] = field(default_factory=dict, repr=False)


class _LayerRtcp:
    """What the transport's RTP router sees as the sender of one layer's SSRCs."""

    def __init__(self, publisher: SimulcastPublisher, layer: Layer) -> None:
        self._publisher = publisher
        self._layer = layer

    def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> Awaitable[None]:
        return self._publisher._on_rtcp(self._layer, packet)


class SimulcastPublisher:
    """Publishes counter video as simulcast layers plus Opus audio (see the module
    docstring). ``layers`` are (rid, width, height), in a=simulcast order."""

    __test__ = False

    def __init__(
        self,
        layers: Sequence[tuple[str, int, int]] = DEFAULT_LAYERS,
        *,
        audio: bool = True,
        fps: int = 30,
        rtx: bool = False,
        keyframe_on_pli: Literal["all", "layer"] = "all",
        rid_until_report: bool = True,
        sender_report_interval: Optional[float] = 1.0,
        send_unanswered_layers: bool = False,
        textured: bool = False,
    ) -> None:
        rids = [rid for rid, _, _ in layers]
        if not rids or len(set(rids)) != len(rids) or not all(_RID.fullmatch(r) for r in rids):
            raise ValueError(f"layers need distinct rids of 1-16 [A-Za-z0-9_-]: {rids}")
        if any(width < 2 * _BANDS_PER_ROW or height < 4 for _, width, height in layers):
            raise ValueError("a layer must be at least 16x4 to carry the counter")
        self.layers = [Layer(rid, width, height) for rid, width, height in layers]
        self.fps = fps
        self.rtx = rtx
        self.keyframe_on_pli = keyframe_on_pli
        self.rid_until_report = rid_until_report
        self.sender_report_interval = sender_report_interval
        self.send_unanswered_layers = send_unanswered_layers
        self.textured = textured
        self.audio = AudioStreamTrack() if audio else None
        self.pc = RTCPeerConnection()
        self.session: Optional[Session] = None
        self.simulcast_accepted = False  # the answer received layers by rid
        self.frames = 0  # frame ticks so far (each layer that sends encodes one a tick)
        self.failure: Optional[Exception] = None  # what stopped the sending tasks, if not close()
        self._video: Optional[RTCRtpTransceiver] = None
        self._transport: Optional[RTCDtlsTransport] = None
        self._extensions = HeaderExtensionsMap()
        self._mid: Optional[str] = None
        self._payload_type = 0
        self._rtx_payload_type: Optional[int] = None
        self._clock_start = 0.0
        self._tasks: list[asyncio.Future[None]] = []
        self._connected = asyncio.Event()
        self.pc.on("connectionstatechange", self._on_connection_state)

    def layer(self, rid: str) -> Layer:
        return next(layer for layer in self.layers if layer.rid == rid)

    def drop(self, rid: str, packets: int = 1) -> None:
        """Leave the layer's next ``packets`` packets unsent, as if lost on the way: the
        relay should NACK them, and they are kept for retransmission."""
        self.layer(rid).drop_next += packets

    @property
    def sending(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.sending]

    async def offer(self) -> str:
        """aiortc's offer with the video section as Chromium writes it for simulcast."""
        if self.audio is not None:
            self.pc.addTransceiver(self.audio, direction="sendonly")
        self._video = self.pc.addTransceiver("video", direction="sendonly")
        self._video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name in ("VP8", "rtx")]
        )
        aiortc_hooks.keep_sender_idle(self._video.sender)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self._simulcast_offer(self.pc.localDescription.sdp)

    def _simulcast_offer(self, text: str) -> str:
        head, video = text.split("m=video", 1)
        lines = ("m=video" + video).split("\r\n")
        used = {line.split()[0] for line in lines if line.startswith("a=extmap:")}
        assert not used & {f"a=extmap:{RID_EXTENSION_ID}", f"a=extmap:{REPAIRED_RID_EXTENSION_ID}"}
        lines = [line for line in lines if not line.startswith("a=ssrc")]
        last_extmap = max(i for i, line in enumerate(lines) if line.startswith("a=extmap:"))
        lines[last_extmap + 1 : last_extmap + 1] = [
            f"a=extmap:{RID_EXTENSION_ID} {RTP_STREAM_ID}",
            f"a=extmap:{REPAIRED_RID_EXTENSION_ID} {REPAIRED_RTP_STREAM_ID}",
        ]
        while lines and not lines[-1]:
            lines.pop()
        lines += [f"a=rid:{layer.rid} send" for layer in self.layers]
        lines.append("a=simulcast:send " + ";".join(layer.rid for layer in self.layers))
        return head + "\r\n".join(lines) + "\r\n"

    async def publish(self, hub: LiveHub, show_id: int) -> Session:
        self.session = await hub.publish(show_id, await self.offer())
        await self.set_answer(self.session.answer_sdp)
        return self.session

    async def set_answer(self, answer_sdp: str) -> None:
        """Apply the relay's answer (from ``publish``, or a WHIP reply) and start sending
        once connected."""
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
        assert self._video is not None, "offer() first"
        self._follow_answer(answer_sdp, self._video.mid)
        self._transport = self._video.sender.transport
        for layer in self.layers:
            recipient = _LayerRtcp(self, layer)
            aiortc_hooks.route_rtcp_to(self._transport, layer.ssrc, recipient)
            aiortc_hooks.route_rtcp_to(self._transport, layer.rtx_ssrc, recipient)
        self._spawn(self._run_video(self._transport))
        if self.sender_report_interval is not None:
            self._spawn(self._run_sender_reports(self._transport))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except Exception as exc:  # a bug here: tests can assert failure is None
                logger.exception("SimulcastPublisher stopped sending")
                self.failure = exc

        self._tasks.append(asyncio.ensure_future(guarded()))

    def _follow_answer(self, answer_sdp: str, mid: Optional[str]) -> None:
        media = next(m for m in sdp.SessionDescription.parse(answer_sdp).media if m.kind == "video" and m.rtp.muxId == mid)
        self._mid = mid
        self._payload_type = next(c.payloadType for c in media.rtp.codecs if c.name == "VP8")
        self._rtx_payload_type = next(
            (
                c.payloadType
                for c in media.rtp.codecs
                if c.name == "rtx" and c.parameters.get("apt") == self._payload_type
            ),
            None,
        )
        received = answered_rids(answer_sdp, mid)
        self.simulcast_accepted = received is not None
        for position, layer in enumerate(self.layers):
            if self.send_unanswered_layers:
                layer.sending = layer.with_rid = True
            elif received is not None:
                layer.sending = layer.with_rid = layer.rid in received
            else:  # a browser sends its first encoding alone, without rid
                layer.sending, layer.with_rid = position == 0, False
        ids = {e.uri: e.id for e in media.rtp.headerExtensions}
        if self.send_unanswered_layers:
            ids.setdefault(RTP_STREAM_ID, RID_EXTENSION_ID)
            ids.setdefault(REPAIRED_RTP_STREAM_ID, REPAIRED_RID_EXTENSION_ID)
        wanted = (MID, ABS_SEND_TIME, RTP_STREAM_ID, REPAIRED_RTP_STREAM_ID)
        self._extensions.configure(
            RTCRtpParameters(
                headerExtensions=[
                    RTCRtpHeaderExtensionParameters(id=ids[uri], uri=uri)
                    for uri in wanted
                    if uri in ids
                ]
            )
        )

    def _on_connection_state(self) -> None:
        if self.pc.connectionState == "connected":
            self._connected.set()

    async def _run_video(self, transport: RTCDtlsTransport) -> None:
        await self._connected.wait()
        loop = asyncio.get_running_loop()
        self._clock_start = loop.time()
        try:
            while True:
                delay = self._clock_start + self.frames / self.fps - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                ticks = self.frames * CLOCK_RATE // self.fps
                for layer in self.sending:
                    await self._send_frame(transport, layer, self.frames, ticks)
                self.frames += 1
        except ConnectionError:
            pass  # closed

    async def _send_frame(
        self, transport: RTCDtlsTransport, layer: Layer, counter: int, ticks: int
    ) -> None:
        frame = layer_counter_frame(counter & 0xFFFF, layer.width, layer.height)
        if self.textured:  # noise in chroma only: the counter (luma) still reads back
            for chroma in frame.planes[1:]:
                chroma.update(os.urandom(chroma.buffer_size))
        frame.pts = ticks
        frame.time_base = fractions.Fraction(1, CLOCK_RATE)
        force_keyframe, layer.keyframe_requested = layer.keyframe_requested, False
        # in a thread, as aiortc's own sender encodes: the relay shares this event loop
        payloads, _ = await asyncio.get_running_loop().run_in_executor(
            None, layer.encoder.encode, frame, force_keyframe
        )
        if not payloads:
            return
        timestamp = (layer.timestamp_base + ticks) & 0xFFFFFFFF
        for i, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=self._payload_type,
                marker=int(i == len(payloads) - 1),
                sequence_number=layer.sequence_number,
                timestamp=timestamp,
                ssrc=layer.ssrc,
                payload=payload,
            )
            self._stamp(packet.extensions, layer, reported=layer.reports_received > 0)
            if packet.extensions.rtp_stream_id is not None:
                layer.rid_packets_sent += 1
            layer.history[packet.sequence_number % HISTORY] = packet
            if layer.drop_next > 0:
                layer.drop_next -= 1
                layer.packets_dropped += 1
            else:
                await aiortc_hooks.send_rtp(transport, packet.serialize(self._extensions))
            layer.sequence_number = (layer.sequence_number + 1) & 0xFFFF
            layer.packets_sent += 1
            layer.octets_sent += len(payload)
        layer.frames_sent += 1
        if _is_vp8_keyframe(payloads[0]):
            layer.keyframes_sent += 1

    def _stamp(
        self, extensions: HeaderExtensions, layer: Layer, *, reported: bool, repair: bool = False
    ) -> None:
        extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0xFFFFFF
        if self.rid_until_report and reported:
            return  # Chromium: the relay knows this SSRC now
        extensions.mid = self._mid
        if layer.with_rid:
            if repair:
                extensions.repaired_rtp_stream_id = layer.rid
            else:
                extensions.rtp_stream_id = layer.rid

    async def _on_rtcp(self, layer: Layer, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == layer.ssrc:
                    layer.reports_received += 1
                elif report.ssrc == layer.rtx_ssrc:
                    layer.rtx_reported = True
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            layer.nacks_received += 1
            layer.packets_nacked += len(packet.lost)
            if self._transport is not None:
                for sequence_number in packet.lost:
                    await self._retransmit(self._transport, layer, sequence_number)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            if packet.fmt == RTCP_PSFB_PLI:
                layer.plis_received += 1
            else:
                layer.firs_received += 1
            for target in self.layers if self.keyframe_on_pli == "all" else [layer]:
                target.keyframe_requested = True
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            layer.rembs_received += 1

    async def _retransmit(
        self, transport: RTCDtlsTransport, layer: Layer, sequence_number: int
    ) -> None:
        packet = layer.history.get(sequence_number % HISTORY)
        if packet is None or packet.sequence_number != sequence_number:
            return
        if self.rtx and self._rtx_payload_type is not None:
            packet = wrap_rtx(
                packet,
                payload_type=self._rtx_payload_type,
                sequence_number=layer.rtx_sequence_number,
                ssrc=layer.rtx_ssrc,
            )
            packet.extensions = HeaderExtensions()  # wrap_rtx shares the original's
            self._stamp(packet.extensions, layer, reported=layer.rtx_reported, repair=True)
            layer.rtx_sequence_number = (layer.rtx_sequence_number + 1) & 0xFFFF
        try:
            await aiortc_hooks.send_rtp(transport, packet.serialize(self._extensions))
        except ConnectionError:
            return
        layer.retransmissions += 1

    async def _run_sender_reports(self, transport: RTCDtlsTransport) -> None:
        assert self.sender_report_interval is not None
        await self._connected.wait()
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(self.sender_report_interval)
                # the RTP time of "now" on each layer's clock: what its frames' timestamps
                # would be if one were captured now (they are ticks of the same clock)
                elapsed = round((loop.time() - self._clock_start) * CLOCK_RATE)
                ntp = clock.current_ntp_time()
                for layer in self.layers:
                    if layer.packets_sent == 0:
                        continue
                    report = RtcpSrPacket(
                        ssrc=layer.ssrc,
                        sender_info=RtcpSenderInfo(
                            ntp_timestamp=ntp,
                            rtp_timestamp=(layer.timestamp_base + elapsed) & 0xFFFFFFFF,
                            packet_count=layer.packets_sent & 0xFFFFFFFF,
                            octet_count=layer.octets_sent & 0xFFFFFFFF,
                        ),
                    )
                    await aiortc_hooks.send_rtp(transport, bytes(report))
                    layer.sender_reports_sent += 1
        except ConnectionError:
            pass

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        sent = [layer.ssrc for layer in self.layers if layer.packets_sent]
        if self._transport is not None and sent:
            try:  # as aiortc's senders and Chromium do when they stop
                await aiortc_hooks.send_rtp(self._transport, bytes(RtcpByePacket(sources=sent)))
            except ConnectionError:
                pass
        await self.pc.close()


def _is_vp8_keyframe(first_payload: bytes) -> bool:
    descriptor, data = VpxPayloadDescriptor.parse(first_payload)
    # RFC 6386 9.1: the frame tag's bit 0 is 0 for a key frame
    starts = descriptor.partition_start and descriptor.partition_id == 0
    return bool(starts and data and not data[0] & 1)


class LayerViewer(TestViewer):
    """A TestViewer that reads the counter at any frame size and records each decoded
    frame's (width, height), which says which layer it is."""

    __test__ = False

    def __init__(self, kinds: tuple[str, ...] = ("video", "audio")) -> None:
        super().__init__(kinds)
        self.sizes: list[tuple[int, int]] = []

    async def _consume(self, track: Any) -> None:  # TestViewer's, with the size-aware reader
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    self.counters.append(read_layer_counter(frame))
                    self.sizes.append((frame.width, frame.height))
                    self.video_pts.append(frame.pts)
                else:
                    self.audio_frames += 1
                self._waiters.check()
        except MediaStreamError:
            self.ended.add(track.kind)
            self._waiters.check()
