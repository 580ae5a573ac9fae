"""A simulcast publisher for the benchmarks: precoded VP8 in three layers, plus Opus.

The studio page publishes 1280x720, 640x360 and 320x180 (rids ``f``, ``h``, ``q``,
listed smallest first as Chromium does). aiortc cannot send simulcast, so this builds
it by hand, as ``tests/live/simulcast_publisher.py`` does (the internals it relies on
are copied below with that helper's comments; bench/ does not import tests/), but it
sends precoded frames (``bench.relay.encode_media(simulcast=True)``: every layer scaled
from the same picture and encoded once at start-up), so the publisher spends no CPU
encoding:

- The offer is aiortc's, with its video section rewritten as Chromium writes it for
  ``sendEncodings``: no ``a=ssrc`` lines, the rid and repaired-rid extmaps, one
  ``a=rid:<r> send`` per layer and ``a=simulcast:send q;h;f``.
- aiortc's own video sender stays idle. Each layer has its own SSRC, random RTP
  timestamp base, sequence numbers and VP8 picture ids, and its own entry on the
  transport's RTP router, so the relay's RTCP for that SSRC (RR, NACK, PLI, FIR) reaches
  it.
- Like Chromium, packets carry mid and rid until an RR covers their SSRC. A Sender
  Report per layer goes out right after the first frame (the relay forwards a layer
  other than its first only once it has that layer's SR) and then about every second,
  mapping every layer's timestamps to one wall clock.
- A NACK is answered by retransmission on the media SSRC (no RTX), from the last 1024
  packets of that layer; a PLI or FIR on any layer by an intra frame on every layer,
  as libvpx does in Chromium (the precoded intra version of the frame due).
- Audio is precoded Opus through aiortc's own sender (``bench.relay.precoded_track``).
- The answer decides what is sent, as in a browser: the layers its
  ``a=simulcast:recv`` lists and does not pause, with rid; an answer without simulcast
  gets the first layer alone, without rid.

``simulcast_publisher_process`` has ``bench.relay.publisher_process``'s signature and
pipe protocol, so either can publish a benchmark's show.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import random
import sys
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from aiortc import (
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
    clock,
    sdp,
)
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.relay import FPS, SHOW, precoded_track, serve_publisher_commands  # noqa: E402
from live import aiortc_hooks  # noqa: E402
from live.aiortc_hooks import packetize_vp8  # noqa: E402
from live.sdp import answered_rids  # noqa: E402

logger = logging.getLogger(__name__)

# aiortc internals this publisher reaches (its idle sender, RTCP per layer SSRC, raw
# RTP) go through live/aiortc_hooks.py: keep_sender_idle, route_rtcp_to, send_rtp.

RTP_STREAM_ID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RTP_STREAM_ID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
# Chromium's ids; aiortc's own video offer uses 1 (mid) and 3 (abs-send-time).
RID_EXTENSION_ID = 10
REPAIRED_RID_EXTENSION_ID = 11
CLOCK_RATE = 90000
HISTORY = 1024  # packets kept per layer for NACKs: ~7 s of the 720p layer
SENDER_REPORT_INTERVAL = 1.0


@dataclass(eq=False)
class PrecodedLayer:
    """One simulcast layer: its precoded frames, its RTP state and its counters."""

    rid: str
    width: int
    height: int
    frames: list[bytes] = field(repr=False)
    keys: list[bytes] = field(repr=False)  # the intra-coded version of each frame
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    sending: bool = False  # decided by the answer
    with_rid: bool = False  # its packets carry mid and rid until an RR covers the SSRC
    timestamp_base: int = field(default_factory=lambda: random.getrandbits(32))
    sequence_number: int = field(default_factory=lambda: random.randrange(1 << 15))
    picture_id: int = field(default_factory=lambda: random.randrange(1 << 15))
    keyframe_requested: bool = False
    history: dict[int, tuple[int, bytes]] = field(default_factory=dict, repr=False)
    frames_sent: int = 0
    keyframes_sent: int = 0
    packets_sent: int = 0
    octets_sent: int = 0  # payload bytes, as SRs count them
    reports_received: int = 0  # RR/SR report blocks about this layer's SSRC
    plis_received: int = 0
    nacks_received: int = 0
    retransmissions: int = 0


class _LayerRtcp:
    """What the transport's RTP router sees as the sender of one layer's SSRC."""

    def __init__(self, source: SimulcastSource, layer: PrecodedLayer) -> None:
        self._source = source
        self._layer = layer

    def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> Awaitable[None]:
        return self._source._on_rtcp(self._layer, packet)


class SimulcastSource:
    """Publishes the precoded layers of ``media`` (``encode_media(simulcast=True)``)
    plus its Opus audio (see the module docstring)."""

    def __init__(self, media: dict[str, Any], fps: int = FPS) -> None:
        self.layers = [
            PrecodedLayer(spec["rid"], spec["width"], spec["height"], spec["video"], spec["keys"])
            for spec in media["layers"]
        ]
        if not media.get("loop_keyframe", True):
            for layer in self.layers:
                layer.keyframe_requested = True  # the loop holds no keyframe: start with one
        self.fps = fps
        self.audio = precoded_track("audio", media["audio"], 48000, 960)
        self.pc = RTCPeerConnection()
        self.frames = 0  # frame ticks so far (each sending layer sends one a tick)
        self.simulcast_accepted = False
        self.failure: Optional[BaseException] = None
        self._video: Optional[RTCRtpTransceiver] = None
        self._transport: Optional[RTCDtlsTransport] = None
        self._extensions = HeaderExtensionsMap()
        self._mid: Optional[str] = None
        self._payload_type = 0
        self._clock_start = 0.0
        self._task: Optional[asyncio.Task[None]] = None
        self._connected = asyncio.Event()
        self.pc.on("connectionstatechange", self._on_connection_state)

    @property
    def sending(self) -> list[PrecodedLayer]:
        return [layer for layer in self.layers if layer.sending]

    async def offer(self) -> str:
        """aiortc's offer with the video section as Chromium writes it for simulcast."""
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

    async def set_answer(self, answer_sdp: str) -> None:
        """Apply the relay's answer and start sending once connected."""
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
        assert self._video is not None, "offer() first"
        self._follow_answer(answer_sdp, self._video.mid)
        self._transport = self._video.sender.transport
        for layer in self.layers:
            aiortc_hooks.route_rtcp_to(self._transport, layer.ssrc, _LayerRtcp(self, layer))
        self._task = asyncio.ensure_future(self._guarded(self._run_video(self._transport)))

    async def _guarded(self, coroutine: Any) -> None:
        try:
            await coroutine
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            logger.exception("SimulcastSource stopped sending")
            self.failure = exc

    def _follow_answer(self, answer_sdp: str, mid: Optional[str]) -> None:
        media = next(m for m in sdp.SessionDescription.parse(answer_sdp).media if m.kind == "video" and m.rtp.muxId == mid)
        self._mid = mid
        self._payload_type = next(c.payloadType for c in media.rtp.codecs if c.name == "VP8")
        received = answered_rids(answer_sdp, mid)
        self.simulcast_accepted = received is not None
        for position, layer in enumerate(self.layers):
            if received is not None:
                layer.sending = layer.with_rid = layer.rid in received
            else:  # a browser sends its first encoding alone, without rid
                layer.sending, layer.with_rid = position == 0, False
        ids = {e.uri: e.id for e in media.rtp.headerExtensions}
        self._extensions.configure(
            RTCRtpParameters(
                headerExtensions=[
                    RTCRtpHeaderExtensionParameters(id=ids[uri], uri=uri)
                    for uri in (MID, RTP_STREAM_ID)
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
        next_report = self._clock_start  # the first SRs follow the first frames
        try:
            while True:
                delay = self._clock_start + self.frames / self.fps - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                ticks = self.frames * CLOCK_RATE // self.fps
                for layer in self.sending:
                    await self._send_frame(transport, layer, self.frames, ticks)
                self.frames += 1
                if loop.time() >= next_report:
                    await self._send_sender_reports(transport, loop.time())
                    next_report += SENDER_REPORT_INTERVAL
        except ConnectionError:
            pass  # closed

    async def _send_frame(self, transport: RTCDtlsTransport, layer: PrecodedLayer, index: int, ticks: int) -> None:
        position = index % len(layer.frames)
        data = layer.frames[position]
        if layer.keyframe_requested:
            layer.keyframe_requested = False
            data = layer.keys[position]
        payloads = packetize_vp8(data, layer.picture_id)
        layer.picture_id = (layer.picture_id + 1) & 0x7FFF
        timestamp = (layer.timestamp_base + ticks) & 0xFFFFFFFF
        stamp = layer.with_rid and layer.reports_received == 0  # Chromium: until an RR
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=self._payload_type,
                marker=int(i == last),
                sequence_number=layer.sequence_number,
                timestamp=timestamp,
                ssrc=layer.ssrc,
                payload=payload,
            )
            if stamp:
                packet.extensions.mid = self._mid
                packet.extensions.rtp_stream_id = layer.rid
            serialized = packet.serialize(self._extensions)
            layer.history[layer.sequence_number % HISTORY] = (layer.sequence_number, serialized)
            await aiortc_hooks.send_rtp(transport, serialized)
            layer.sequence_number = (layer.sequence_number + 1) & 0xFFFF
            layer.packets_sent += 1
            layer.octets_sent += len(payload)
        layer.frames_sent += 1
        if not data[0] & 1:  # RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame
            layer.keyframes_sent += 1

    async def _send_sender_reports(self, transport: RTCDtlsTransport, now: float) -> None:
        # the RTP time of "now" on each layer's clock: what its frames' timestamps would
        # be if one were captured now (they are ticks of the same clock)
        elapsed = round((now - self._clock_start) * CLOCK_RATE)
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

    async def _on_rtcp(self, layer: PrecodedLayer, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            layer.reports_received += sum(1 for report in packet.reports if report.ssrc == layer.ssrc)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            layer.nacks_received += 1
            transport = self._transport
            for sequence_number in packet.lost:
                kept = layer.history.get(sequence_number % HISTORY)
                if transport is None or kept is None or kept[0] != sequence_number:
                    continue
                try:
                    await aiortc_hooks.send_rtp(transport, kept[1])
                except ConnectionError:
                    return
                layer.retransmissions += 1
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            layer.plis_received += 1
            for target in self.layers:  # libvpx in Chromium keys every layer
                target.keyframe_requested = True

    def counters(self) -> dict[str, Any]:
        return {
            layer.rid: {
                "frames": layer.frames_sent,
                "keyframes": layer.keyframes_sent,
                "packets": layer.packets_sent,
                "plis": layer.plis_received,
                "nacks": layer.nacks_received,
                "retransmissions": layer.retransmissions,
                "reports": layer.reports_received,
            }
            for layer in self.layers
        }

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        sent = [layer.ssrc for layer in self.layers if layer.packets_sent]
        if self._transport is not None and sent:
            try:  # as aiortc's senders and Chromium do when they stop
                await aiortc_hooks.send_rtp(self._transport, bytes(RtcpByePacket(sources=sent)))
            except ConnectionError:
                pass
        await self.pc.close()


# --- the benchmark's publisher process ---------------------------------------------------


def simulcast_publisher_process(url: str, media_path: str, conn: Any) -> None:
    """As ``bench.relay.publisher_process``: WHIP to ``url``, ("ready", pid), answer
    "frames" until "stop"."""
    asyncio.run(_publish(url, media_path, conn))


async def _publish(url: str, media_path: str, conn: Any) -> None:
    import aiohttp

    media = pickle.loads(Path(media_path).read_bytes())
    source = SimulcastSource(media)
    offer = await source.offer()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/whip/{SHOW}", data=offer) as reply:
            answer = await reply.text()
            assert reply.status == 201, answer
    await source.set_answer(answer)
    if not source.simulcast_accepted:
        print("simulcast publisher: the relay's answer receives no simulcast", file=sys.stderr)
    conn.send(("ready", os.getpid()))
    await serve_publisher_commands(conn, lambda: source.frames)
    if source.failure is not None:
        print(f"simulcast publisher failed: {source.failure!r}", file=sys.stderr)
    await source.close()
