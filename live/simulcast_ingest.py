"""Receiving a simulcast publisher: two or three layers of one video m-line.

aiortc's ``RTCRtpReceiver`` is single-stream: one jitter buffer, one NACK generator, and
its router learns every new SSRC with the video payload type into that one receiver, so
three layers would be mixed into one buffer. For a simulcast offer the relay takes over
the receiver's RTP handling (``aiortc_hooks.route_rtp_packets``) and runs one small
receive path per layer, made of aiortc's own parts (``StreamStatistics``,
``NackGenerator`` as ``NackWindow``, ``unwrap_rtx``, ``depayload``) and the relay's
``MarkerJitterBuffer``:

- **Binding.** Browsers announce no SSRCs for simulcast (no ``a=ssrc`` lines); the first
  packets of each layer carry the RtpStreamId header extension (RFC 8852), RTX packets
  the RepairedRtpStreamId. An SSRC is bound to its layer on its first packet with a rid
  the answer accepted; bindings last (Chromium stops sending rids once a receiver
  report covers the SSRC, so no report is sent for an SSRC before it is bound).
  Packets of an unknown rid, RTX before its layer's media SSRC, or an SSRC never named
  by a rid are dropped and counted; nothing per packet raises.
- **Per layer**: receiver statistics and reports, NACKs for the layer's media SSRC,
  RTX unwrapped onto it, frames reassembled and handed to ``on_frame(layer, data,
  timestamp, now)``; picture loss to ``on_picture_loss(layer)``.
- **No REMB to the publisher.** aiortc's estimator runs on event-loop arrival times;
  on a busy relay it reads loop jitter as congestion and its REMB turned Chromium's
  top layer off (measured, docs/relay.md "Simulcast"). The answer carries
  ``x-google-start-bitrate`` instead and loss in the receiver reports drives the
  publisher's own estimate.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from aiortc.codecs import depayload
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtcpSrPacket, RtpPacket, unwrap_rtx

from live.aiortc_hooks import MarkerJitterBuffer, NackWindow

logger = logging.getLogger(__name__)

JITTER_PACKETS = 512  # per layer, as for a single-layer publisher (live/publisher.py)
REPORT_INTERVAL = 1.0  # seconds between receiver reports, randomised ±50 % like aiortc

FrameSink = Callable[[int, bytes, int, float], None]


class LayerReceiver:
    """One simulcast layer's receive path (one media SSRC, maybe one RTX SSRC)."""

    def __init__(self, index: int, rid: str, codecs: dict[int, RTCRtpCodecParameters]) -> None:
        self.index = index
        self.rid = rid
        self.media_ssrc: Optional[int] = None
        self.rtx_ssrc: Optional[int] = None
        self.statistics: dict[int, StreamStatistics] = {}
        self.jitter = MarkerJitterBuffer(capacity=JITTER_PACKETS, is_video=True)
        self.jitter.codecs = codecs
        self.nacks = NackWindow(JITTER_PACKETS)
        self.last_sr: dict[int, tuple[int, float]] = {}  # ssrc -> (middle 32 bits, time)
        self.packets = 0
        self.frames = 0


class SimulcastIngest:
    """Demultiplexes a simulcast publisher's video by rid into ``LayerReceiver``s."""

    def __init__(
        self,
        rids: tuple[str, ...],
        codecs: dict[int, RTCRtpCodecParameters],
        *,
        on_frame: FrameSink,
        on_picture_loss: Callable[[int], None],
        send_rtcp: Callable[[Any], Awaitable[None]],
        rtcp_ssrc: Callable[[], Optional[int]],
        spawn: Callable[[Any], Any],
    ) -> None:
        self.layers = [LayerReceiver(i, rid, codecs) for i, rid in enumerate(rids)]
        self._by_rid = {layer.rid: layer for layer in self.layers}
        self._by_ssrc: dict[int, tuple[LayerReceiver, bool]] = {}  # ssrc -> (layer, is RTX)
        self._codecs = codecs
        self._on_frame = on_frame
        self._on_picture_loss = on_picture_loss
        self._send_rtcp = send_rtcp
        self._rtcp_ssrc = rtcp_ssrc
        self._spawn = spawn
        self._reporter: Optional[asyncio.Task[None]] = None
        self.closed = False
        # counters (stats): bad input is dropped, never raised
        self.unknown_rid_packets = 0
        self.unbound_packets = 0
        self.rtx_without_base = 0

    # --- RTP ------------------------------------------------------------------------

    async def handle_rtp(self, packet: RtpPacket, arrival_time_ms: int = 0) -> None:
        """Installed in place of ``RTCRtpReceiver._handle_rtp_packet``."""
        if self.closed:
            return
        bound = self._by_ssrc.get(packet.ssrc)
        if bound is None:
            bound = self._bind(packet)
            if bound is None:
                return
        layer, is_rtx = bound
        codec = self._codecs.get(packet.payload_type)
        if codec is None:
            return
        statistics = layer.statistics.get(packet.ssrc)
        if statistics is None:
            statistics = layer.statistics[packet.ssrc] = StreamStatistics(codec.clockRate)
        statistics.add(packet)
        if is_rtx or codec.name.lower() == "rtx":
            apt = codec.parameters.get("apt")
            if layer.media_ssrc is None or len(packet.payload) < 2 or apt not in self._codecs:
                return  # padding-only probes, or RTX whose base is unknown
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=layer.media_ssrc)
            codec = self._codecs[apt]
        layer.packets += 1
        if layer.nacks.add(packet) and layer.media_ssrc is not None:
            self._spawn(self._nack(layer))
        try:
            packet._data = depayload(codec, packet.payload) if packet.payload else b""  # type: ignore[attr-defined]
        except ValueError:
            return
        picture_lost, frame = layer.jitter.add(packet)
        if picture_lost:
            self._on_picture_loss(layer.index)
        if frame is not None:
            layer.frames += 1
            try:
                self._on_frame(layer.index, frame.data, frame.timestamp, time.monotonic())
            except Exception:
                logger.exception("simulcast layer %s: relaying a frame failed", layer.rid)

    def _bind(self, packet: RtpPacket) -> Optional[tuple[LayerReceiver, bool]]:
        extensions = packet.extensions
        rid = extensions.rtp_stream_id
        repaired = extensions.repaired_rtp_stream_id
        if rid is not None:
            layer = self._by_rid.get(rid)
            if layer is None:
                self.unknown_rid_packets += 1
                return None
            if layer.media_ssrc is not None and layer.media_ssrc != packet.ssrc:
                # A new SSRC for a layer (the publisher's encoder restarted): forget the
                # old one; the layer's chain restarts at a keyframe.
                self._by_ssrc.pop(layer.media_ssrc, None)
                layer.statistics.pop(layer.media_ssrc, None)
                layer.nacks = NackWindow(JITTER_PACKETS)
                self._on_picture_loss(layer.index)
            layer.media_ssrc = packet.ssrc
            bound = self._by_ssrc[packet.ssrc] = (layer, False)
            return bound
        if repaired is not None:
            layer = self._by_rid.get(repaired)
            if layer is None:
                self.unknown_rid_packets += 1
                return None
            if layer.media_ssrc is None:
                self.rtx_without_base += 1  # bound now, used once its base is known
            if layer.rtx_ssrc is not None:
                self._by_ssrc.pop(layer.rtx_ssrc, None)
            layer.rtx_ssrc = packet.ssrc
            bound = self._by_ssrc[packet.ssrc] = (layer, True)
            return bound
        self.unbound_packets += 1
        return None

    # --- RTCP -----------------------------------------------------------------------

    def sender_report(self, packet: RtcpSrPacket) -> Optional[int]:
        """Note a publisher SR (for the LSR/DLSR of our reports); the layer index it
        belongs to, or None for an SSRC not bound to a layer."""
        bound = self._by_ssrc.get(packet.ssrc)
        if bound is None:
            return None
        layer, _ = bound
        middle = (packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF
        layer.last_sr[packet.ssrc] = (middle, time.time())
        return layer.index

    async def request_keyframe(self, index: int, send_pli: Callable[[int], Awaitable[None]]) -> None:
        ssrc = self.layers[index].media_ssrc
        if ssrc is not None:
            await send_pli(ssrc)

    async def _nack(self, layer: LayerReceiver) -> None:
        from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

        sender = self._rtcp_ssrc()
        if sender is None or layer.media_ssrc is None or not layer.nacks.missing:
            return
        packet = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=sender, media_ssrc=layer.media_ssrc)
        packet.lost = sorted(layer.nacks.missing)
        await self._send_rtcp(packet)

    def start(self) -> None:
        if self._reporter is None:
            self._reporter = asyncio.ensure_future(self._report_forever())

    async def _report_forever(self) -> None:
        while not self.closed:
            await asyncio.sleep(REPORT_INTERVAL * (0.5 + random.random()))
            try:
                await self._send_reports()
            except Exception:
                logger.exception("simulcast receiver reports failed")

    async def _send_reports(self) -> None:
        sender = self._rtcp_ssrc()
        if sender is None:
            return
        now = time.time()
        reports = []
        for layer in self.layers:
            for ssrc, statistics in layer.statistics.items():
                lsr, dlsr = 0, 0
                if ssrc in layer.last_sr:
                    lsr, at = layer.last_sr[ssrc]
                    if 0 < now - at < 65536:
                        dlsr = int((now - at) * 65536)
                reports.append(
                    RtcpReceiverInfo(
                        ssrc=ssrc,
                        fraction_lost=statistics.fraction_lost,
                        packets_lost=statistics.packets_lost,
                        highest_sequence=statistics.max_seq or 0,
                        jitter=statistics.jitter,
                        lsr=lsr,
                        dlsr=dlsr,
                    )
                )
        # An RR carries at most 31 report blocks; three layers and their RTX use six.
        if reports:
            await self._send_rtcp(RtcpRrPacket(ssrc=sender, reports=reports[:31]))

    def counters(self) -> dict[str, int]:
        return {
            "simulcast_unknown_rid_packets": self.unknown_rid_packets,
            "simulcast_unbound_packets": self.unbound_packets,
            "simulcast_rtx_without_base": self.rtx_without_base,
        }

    def close(self) -> None:
        self.closed = True
        if self._reporter is not None:
            self._reporter.cancel()
            self._reporter = None
