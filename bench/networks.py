"""Viewers on real-world links: one publisher, viewers each behind a shaped link.

    python bench/networks.py                   # single layer, then simulcast, ~3 minutes
    python bench/networks.py --resume          # + a publisher's return, in both runs
    python bench/networks.py --only simulcast  # one run
    python bench/networks.py --seconds 10 --settle 3   # shorter

Re-executes itself in a private network namespace with only loopback (the "server
side": the relay and the publisher, over 127.0.0.2). Each viewer gets a network
namespace of its own behind a veth pair (10.99.N.0/30, removed on exit), shaped on the
relay's side with `tc ... tbf` (a rate cap: the viewer's downlink) and in the viewer's
namespace with `nft ... numgen random mod 100 < N drop` (random loss; this kernel has
no netem). Nothing leaves the machine.

Two runs, each with a fresh relay and the same three viewers:
- single layer (the baseline): the publisher sends precoded 720p VP8 (~1.5 Mbit/s) and
  Opus (bench/relay.py's media) and answers PLIs with a keyframe; every viewer gets
  that one bitrate.
- simulcast: bench/simulcast_source.py sends the same 720p picture in three precoded
  layers (1280x720 ~1.5 Mbit/s, 640x360 ~500 kbit/s, 320x180 ~150 kbit/s; rids q, h,
  f, smallest first, as the studio page does) plus Opus. The relay picks each viewer's
  layer from that viewer's RTCP (live/layer_control.py). aiortc viewers send receiver
  reports and NACKs but REMB only over abs-send-time, which the relay does not stamp
  toward viewers, so the loss-based mode is what runs here.

Each viewer is an aiortc peer that decodes the video (so NACK, PLI and the jitter
buffer work as in a real receiver) and reports, over a measurement window: decoded
frames per second beside the publisher's own (its frames sent over the same window),
the time frozen (WebRTC's definition, as Chromium's totalFreezesDuration: an
inter-frame gap longer than max(3 x the mean frame interval, the mean + 150 ms)), the
decoded picture height, the received video bitrate and the loss left after repair
(sequence numbers never received, retransmissions included). Over the settle time and
the window it also prints each viewer's decoded height over time, its freezes, and the
relay's count of viewers per layer (GET /stats, once a second).

Scenarios (viewers): unshaped; 700 kbit/s; 5 % random loss. Targets from issue 13:
every viewer decodes >= 85 % of the publisher's frame rate with <= 3 % of the time
frozen; the unshaped viewer gets 720p; a publisher's return is seen within 1 s.

``--resume`` also stops the publisher after the window and publishes again 2 s later
(single layer or simulcast, as the run's), and prints the time from the new publisher's
WHIP answer to each viewer's next decoded frame.

``--keyframes pli``: the looped media holds no keyframe, so the publisher sends one
only when asked, as a browser does (the default, ``loop``, repeats bench/relay.py's
2 s loop that starts with a keyframe: one every 2 s on every layer).

``--viewer browser-like``: aiortc's receiver with a browser's loss handling (see
``browser_like_receiver``): aiortc's own stalls behind an unrepaired packet for up to
512 packets (17 s on the 180p layer) and never jumps to a keyframe, which would
otherwise decide the freeze figures whatever the relay does. The second table (frames
before decoding, the decoder's backlog, the viewer's CPU) tells a busy machine apart
from the network: on 2 shared cores a viewer that cannot decode in time falls behind
and shows freezes the relay did not cause.

``--media FILE`` keeps the encoded media between runs (encoded if missing; its
keyframe mode wins over ``--keyframes``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.relay import (  # noqa: E402
    SHOW,
    encode_media,
    ensure_loopback_namespace,
    publisher_process,
)
from bench.harness import load_average, process_cpu  # noqa: E402

PUBLISHER_FPS = 30
RUNS = ("single", "simulcast")
AFTER_RESUME = 8.0  # --resume: seconds of decoded heights shown after the publisher's return


@dataclass(frozen=True)
class Link:
    name: str
    rate_kbit: Optional[int] = None  # tbf rate cap toward the viewer
    loss_percent: int = 0  # random loss of UDP toward the viewer


LINKS = [Link("unshaped"), Link("700 kbit/s", rate_kbit=700), Link("5 % loss", loss_percent=5)]


# --- network namespaces ------------------------------------------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


class ViewerNetworks:
    """One namespace and veth pair per viewer, shaped as its Link says."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.links: list[str] = []

    def add(self, index: int, link: Link) -> tuple[str, str]:
        """Create the viewer's namespace; returns (namespace, the relay's address)."""
        name = f"lmbench-{os.getpid()}-{index}"
        ours, theirs = f"lmr{index}", f"lmv{index}"
        relay_ip, viewer_ip = f"10.99.{index}.1", f"10.99.{index}.2"
        _ip("netns", "add", name)
        self.names.append(name)
        _ip("link", "add", ours, "type", "veth", "peer", "name", theirs, "netns", name)
        self.links.append(ours)
        _ip("addr", "add", f"{relay_ip}/30", "dev", ours)
        _ip("link", "set", ours, "up")
        _ip("-n", name, "addr", "add", f"{viewer_ip}/30", "dev", theirs)
        _ip("-n", name, "link", "set", theirs, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        if link.rate_kbit is not None:
            # A 100 ms queue: a home router's buffer, not an endless one.
            subprocess.run(
                ["tc", "qdisc", "add", "dev", ours, "root", "tbf", "rate", f"{link.rate_kbit}kbit",
                 "burst", "16kb", "latency", "100ms"],
                check=True,
            )
        if link.loss_percent:
            rules = (
                "table inet lmbench {\n"
                "  chain input { type filter hook input priority 0;\n"
                f"    meta l4proto udp numgen random mod 100 < {link.loss_percent} drop\n"
                "  }\n}\n"
            )
            subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=rules.encode(), check=True)
        return name, relay_ip

    def close(self) -> None:
        # The relay's end first: a namespace is torn down asynchronously, and its veth
        # peer with it, so the next run would otherwise race it for the name.
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], stderr=subprocess.DEVNULL)
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
        self.names.clear()
        self.links.clear()


# --- relay server process ----------------------------------------------------------------


def server_process(conn: Any) -> None:
    asyncio.run(_serve(conn))


async def _serve(conn: Any) -> None:
    from aiohttp import web

    from live.hub import LiveHub

    hub = LiveHub(publisher_grace=60.0)

    async def whip(request: web.Request) -> web.Response:
        session = await hub.publish(int(request.match_info["show"]), await request.text())
        return web.Response(status=201, text=session.answer_sdp, headers={"Location": f"/whip/1/{session.id}"})

    async def whep(request: web.Request) -> web.Response:
        session = await hub.play(int(request.match_info["show"]), await request.text())
        return web.Response(status=201, text=session.answer_sdp, headers={"Location": f"/whep/1/{session.id}"})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(hub.stats())

    app = web.Application()
    app.router.add_post("/whip/{show}", whip)
    app.router.add_post("/whep/{show}", whep)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", 0)  # viewers call in over their veth links
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    conn.send(("ready", port, os.getpid()))
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    await hub.close()
    await runner.cleanup()


# --- the viewer (runs in its own namespace) ----------------------------------------------


def browser_like_receiver(receiver: Any) -> Any:
    """Give an aiortc video receiver the loss handling of a browser's (``--viewer
    browser-like``); returns the new jitter buffer, which counts what it did.

    aiortc's receiver differs from libwebrtc's in ways that decide how long a viewer
    stays frozen, whatever the relay does:
    - it NACKs the packets missing when a new gap appears, and lists them again only at
      the next gap, until the newest is 128 packets past them; libwebrtc asks again
      every round trip, up to 10 times;
    - its jitter buffer releases frames strictly in sequence: behind a packet that was
      never repaired, every later frame waits until 512 packets have arrived (3.4 s at
      the 720p layer's ~150 packets/s, ~17 s at the 180p layer's ~30), even when a
      complete keyframe (a relay's layer switch always lands on one) is in the buffer;
      libwebrtc's frame buffer decodes a keyframe without the frames before it;
    - a retransmission arriving 100 packets or more behind the buffer's start resets
      the buffer to it (and sends a PLI); libwebrtc drops such a packet.
    This keeps aiortc's buffer and decoder and changes those three: missing packets are
    asked for while the buffer would wait for them (512 packets; still only when a new
    gap appears), a complete keyframe past a hole is released with what follows it
    (the packets before it are given up), late packets are dropped, and a PLI is sent
    when packets arrive but no frame has left for 1 s (libwebrtc asks for a keyframe
    when NACK fails; its timing is a guess here).

    Relies on aiortc's ``RTCRtpReceiver.__jitter_buffer`` and ``__nack_generator`` (set
    in ``__init__``, read per packet by ``_handle_rtp_packet``, which sends a PLI when
    ``add()`` returns True and NACKs ``sorted(missing)`` when the generator's ``add()``
    does), and ``JitterBuffer``'s ``_origin``, ``_packets``, ``_capacity``, ``remove()``;
    the VP8 payload descriptor in ``RtpPacket.payload`` and the depayloaded ``_data``.
    """
    from aiortc.jitterbuffer import JitterBuffer
    from aiortc.rtcrtpreceiver import NackGenerator
    from aiortc.utils import uint16_add, uint16_gt

    class LongNackGenerator(NackGenerator):
        def __init__(self, window: int) -> None:
            super().__init__()
            self.window = window

        def truncate(self) -> None:
            if self.max_seq is not None:
                oldest = uint16_add(self.max_seq, -self.window)
                self.missing = {n for n in self.missing if not uint16_gt(oldest, n)}

        def give_up_before(self, sequence_number: int) -> None:
            self.missing = {n for n in self.missing if not uint16_gt(sequence_number, n)}

    class KeyframeSkippingBuffer(JitterBuffer):
        def __init__(self, nacks: LongNackGenerator) -> None:
            super().__init__(capacity=512, is_video=True)
            self.nacks = nacks
            self.skips = 0  # keyframes released past a hole
            self.late = 0  # packets dropped for arriving behind the buffer's start
            self.stall_plis = 0
            self._released_at = time.monotonic()
            self._last_pli = 0.0

        def add(self, packet: Any) -> tuple[bool, Any]:
            origin = self._origin
            if origin is not None and uint16_gt(origin, packet.sequence_number):
                self.late += 1
                return False, None
            pli_flag, frame = super().add(packet)
            now = time.monotonic()
            if frame is not None:
                self._released_at = now
                return pli_flag, frame
            origin = self._origin
            if packet.marker and origin is not None:
                first = self._keyframe_start(packet)
                if first is not None and self._hole_between(origin, first):
                    self.remove(uint16_add(first, -origin))
                    self.nacks.give_up_before(first)
                    self.skips += 1
                    return pli_flag, frame  # released with the next frame's first packet
            if now - self._released_at > 1.0 and now - self._last_pli > 1.0:
                self._last_pli = now
                self.stall_plis += 1
                pli_flag = True
            return pli_flag, frame

        def _hole_between(self, origin: int, first: int) -> bool:
            count = uint16_add(first, -origin)
            return any(self._packets[(origin + i) % self._capacity] is None for i in range(count))

        def _keyframe_start(self, last: Any) -> Optional[int]:
            """The first sequence number of the complete VP8 keyframe ``last`` ends."""
            number = last.sequence_number
            for _ in range(self._capacity - 1):
                before = self._packets[uint16_add(number, -1) % self._capacity]
                if before is None or before.timestamp != last.timestamp or before.sequence_number != uint16_add(number, -1):
                    break
                number = uint16_add(number, -1)
            first = self._packets[number % self._capacity]
            data = getattr(first, "_data", b"")
            # RFC 7741: S bit and partition 0; RFC 6386 9.1: frame tag bit 0 clear for a key frame
            if first.payload and first.payload[0] & 0x17 == 0x10 and data and not data[0] & 1:
                return number
            return None

    private: Any = receiver  # name-mangled attributes
    nacks = LongNackGenerator(512)
    buffer = KeyframeSkippingBuffer(nacks)
    private._RTCRtpReceiver__nack_generator = nacks
    private._RTCRtpReceiver__jitter_buffer = buffer
    return buffer


class DecodingViewer:
    """An aiortc receiver that decodes; records each decoded frame, each video packet's
    size and sequence number as it arrives, and the PLIs and NACKs it sends."""

    def __init__(self, browser_like: bool = False) -> None:
        from aiortc import RTCPeerConnection

        self.pc = RTCPeerConnection()
        self.browser_like = browser_like
        self.buffer: Any = None  # browser_like_receiver's, for its counters
        self.decoder_backlog: list[tuple[float, int]] = []  # (when, frames queued)
        self.assembled: list[float] = []  # when each frame left the jitter buffer
        self.frames: list[tuple[float, int]] = []  # (monotonic arrival, height)
        self.frame_timestamps: list[int] = []  # the RTP timestamp of each decoded frame
        self.video_packets: list[tuple[float, int, int]] = []  # (arrival, bytes, sequence number)
        self.plis: list[float] = []
        self.nacks: list[tuple[float, int]] = []  # (sent, sequence numbers asked for)
        self.video_pt = -1
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    @property
    def video_bytes(self) -> list[tuple[float, int]]:
        return [(t, size) for t, size, _ in self.video_packets]

    async def join(self, url: str) -> None:
        import aiohttp
        from aiortc import RTCSessionDescription

        video = self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        if self.browser_like:
            self.buffer = browser_like_receiver(video.receiver)
        self._tasks.append(asyncio.ensure_future(self._sample_decoder_backlog(video.receiver)))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._count_video_packets()
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/whep/{SHOW}", data=self.pc.localDescription.sdp) as reply:
                answer = await reply.text()
                if reply.status != 201:
                    raise RuntimeError(f"WHEP {reply.status}: {answer}")
        for line in answer.splitlines():
            if line.startswith("m=video"):
                self.video_pt = int(line.split()[3])
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self._count_feedback()

    def _count_video_packets(self) -> None:
        # Bytes and sequence number of each video packet, read before aiortc decrypts
        # (the RTP header is clear text); retransmissions included. Relies on aioice's
        # Connection._protocols and its protocols' datagram_received (as bench/relay.py).
        wrapped: set[int] = set()
        for transceiver in self.pc.getTransceivers():
            connection = transceiver.receiver.transport.transport._connection
            for protocol in connection._protocols:
                if id(protocol) in wrapped:
                    continue
                wrapped.add(id(protocol))
                original = protocol.datagram_received

                def received(data: bytes, addr: Any, original: Any = original) -> None:
                    if len(data) > 12 and 127 < data[0] < 192 and (data[1] & 0x7F) == self.video_pt:
                        self.video_packets.append((time.monotonic(), len(data), data[2] << 8 | data[3]))
                    original(data, addr)

                protocol.datagram_received = received

    async def _sample_decoder_backlog(self, receiver: Any) -> None:
        # Frames waiting for aiortc's decoder thread: when the machine is busy, decoding
        # falls behind and frames leave late in bursts, which shows as freezes that are
        # the viewer's CPU, not the network. Relies on RTCRtpReceiver.__decoder_queue.
        queue = receiver._RTCRtpReceiver__decoder_queue
        put = queue.put

        def assembled(item: Any, *args: Any, **kwargs: Any) -> None:
            if item is not None:  # (codec, frame); None stops the decoder thread
                self.assembled.append(time.monotonic())
            put(item, *args, **kwargs)

        queue.put = assembled  # frames as they leave the jitter buffer, before decoding
        while True:
            self.decoder_backlog.append((time.monotonic(), queue.qsize()))
            await asyncio.sleep(0.1)

    def _count_feedback(self) -> None:
        # Relies on aiortc's RTCRtpReceiver._send_rtcp_pli(media_ssrc) and
        # _send_rtcp_nack(media_ssrc, lost), through which its receiver sends both.
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind != "video":
                continue
            receiver = transceiver.receiver
            send_pli, send_nack = receiver._send_rtcp_pli, receiver._send_rtcp_nack

            async def pli(media_ssrc: int, send_pli: Any = send_pli) -> None:
                self.plis.append(time.monotonic())
                await send_pli(media_ssrc)

            async def nack(media_ssrc: int, lost: list[int], send_nack: Any = send_nack) -> None:
                self.nacks.append((time.monotonic(), len(lost)))
                await send_nack(media_ssrc, lost)

            receiver._send_rtcp_pli = pli
            receiver._send_rtcp_nack = nack

    def _on_track(self, track: Any) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.ensure_future(self._consume(track)))
        else:
            self._tasks.append(asyncio.ensure_future(self._drain(track)))

    async def _consume(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                self.frames.append((time.monotonic(), frame.height))
                self.frame_timestamps.append(frame.pts)
        except MediaStreamError:
            return

    async def _drain(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                await track.recv()
        except MediaStreamError:
            return

    async def lost_after_repair(self) -> tuple[int, int]:
        """(packets received, packets lost) of the video stream, from aiortc's stats."""
        report = await self.pc.getStats()
        for stats in report.values():
            if stats.type == "inbound-rtp" and stats.kind == "video":
                return stats.packetsReceived, stats.packetsLost
        return 0, 0

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()


def freezes(frames: list[tuple[float, int]], start: float, end: float) -> list[tuple[float, float, int, int]]:
    """Freezes within [start, end), WebRTC's rule: (when the gap began, its length, the
    height decoded before it, the height after it; 0 for none)."""
    inside = [(t, h) for t, h in frames if start <= t < end]
    before = [h for t, h in frames if t < start]
    found = []
    intervals: list[float] = []
    previous, previous_height = start, before[-1] if before else 0
    for arrival, height in inside + [(end, 0)]:
        gap = arrival - previous
        if intervals:
            mean = statistics.fmean(intervals[-30:])
            if gap > max(3 * mean, mean + 0.150):
                found.append((previous, gap, previous_height, height))
        elif gap > 0.5:  # nothing decoded since the window opened
            found.append((previous, gap, previous_height, height))
        intervals.append(gap)
        previous, previous_height = arrival, height
    return found


def window_figures(frames: list[tuple[float, int]], video_bytes: list[tuple[float, int]],
                   start: float, end: float) -> dict[str, Any]:
    """Frame rate, freezes (WebRTC's rule), height and bitrate within [start, end)."""
    heights = [h for t, h in frames if start <= t < end]
    seconds = end - start
    frozen = sum(gap for _, gap, _, _ in freezes(frames, start, end))
    received = sum(size for t, size in video_bytes if start <= t < end)
    return {
        "fps": len(heights) / seconds,
        "frozen_s": frozen,
        "frozen_pct": 100 * frozen / seconds,
        "height": statistics.median(heights) if heights else 0,
        "kbit_s": received * 8 / seconds / 1000,
    }


def packet_figures(packets: list[tuple[float, int, int]], start: float, end: float,
                   late: float = 0.5) -> dict[str, Any]:
    """Loss after repair from the sequence numbers themselves: the span of those first
    seen in [start, end), less those that arrived by ``end + late`` (retransmissions
    included); and how many packets arrived more than once."""
    extended: list[tuple[float, int]] = []
    last: Optional[int] = None
    for at, _, number in packets:
        if last is None:
            value = number
        else:
            value = (last & ~0xFFFF) | number
            if value < last - 0x8000:
                value += 0x10000
            elif value > last + 0x8000:
                value -= 0x10000
        extended.append((at, value))
        last = value if last is None or value > last else last
    inside = [v for at, v in extended if start <= at < end]
    if not inside:
        return {"loss_pct": 100.0, "duplicates": 0, "packets": 0}
    low, high = min(inside), max(inside)
    arrived = [v for at, v in extended if at < end + late and low <= v <= high]
    unique = len(set(arrived))
    expected = high - low + 1
    return {
        "loss_pct": 100 * (expected - unique) / expected,
        "duplicates": len(arrived) - unique,
        "packets": len(inside),
    }


def viewer_process(url: str, browser_like: bool, conn: Any) -> None:
    asyncio.run(_view(url, browser_like, conn))


async def _view(url: str, browser_like: bool, conn: Any) -> None:
    loop = asyncio.get_running_loop()
    viewer = DecodingViewer(browser_like)
    try:
        await viewer.join(url)
        conn.send(("joined",))
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command[0] == "measure":
                _, start, end = command
                received_before, lost_before = await viewer.lost_after_repair()
                cpu_before = os.times()
                await asyncio.sleep(max(0.0, end - time.monotonic()) + 0.2)
                cpu_after = os.times()
                received, lost = await viewer.lost_after_repair()
                figures = window_figures(viewer.frames, viewer.video_bytes, start, end)
                figures.update(packet_figures(viewer.video_packets, start, end))
                got, missing = received - received_before, lost - lost_before
                # aiortc's packetsLost is expected - received, duplicates counted as received
                figures["aiortc_loss_pct"] = 100 * missing / max(1, got + missing)
                figures["frames"] = [(t, h) for t, h in viewer.frames if t < end]  # since joining
                # How far behind live each decoded frame is, beside the viewer's most
                # live frame: arrival minus its RTP time (pts, 90 kHz; the relay keeps one
                # timeline across layers), less the smallest such lag since joining.
                lags = [t - pts / 90000 for (t, _), pts in zip(viewer.frames, viewer.frame_timestamps)]
                if lags:
                    best = min(lags)
                    inside = [lag - best for (t, _), lag in zip(viewer.frames, lags) if start <= t < end]
                    figures["behind_max_s"] = max(inside, default=0.0)
                    figures["behind_end_s"] = inside[-1] if inside else 0.0
                # decoded frames not later than one decoded before (aiortc's pts: the RTP
                # timestamp, unwrapped, from 0)
                figures["stale_frames"], latest = 0, None
                for (t, _), pts in zip(viewer.frames, viewer.frame_timestamps):
                    if start <= t < end and latest is not None and pts <= latest:
                        figures["stale_frames"] += 1
                    latest = pts if latest is None else max(latest, pts)
                figures["plis_sent"] = [t for t in viewer.plis if t < end]
                figures["nacks_sent"] = sum(n for t, n in viewer.nacks if start <= t < end)
                figures["cpu_pct"] = 100 * (cpu_after.user + cpu_after.system - cpu_before.user
                                            - cpu_before.system) / (end - start + 0.2)
                backlog = [n for t, n in viewer.decoder_backlog if start <= t < end]
                figures["decoder_backlog_max"] = max(backlog, default=0)
                # the same figures for frames as they leave the jitter buffer: what the
                # network and the relay delivered, before the viewer's CPU decodes it
                whole = window_figures([(t, 0) for t in viewer.assembled], [], start, end)
                figures["assembled_fps"], figures["assembled_frozen_pct"] = whole["fps"], whole["frozen_pct"]
                if viewer.buffer is not None:
                    figures["buffer"] = {"keyframe_skips": viewer.buffer.skips, "late_dropped": viewer.buffer.late,
                                         "stall_plis": viewer.buffer.stall_plis}
                conn.send(("measured", figures))
            elif command[0] == "frames_since":
                conn.send(("frames", [(t, h) for t, h in viewer.frames if t >= command[1]]))
            elif command[0] == "next_frame_after":
                _, since, timeout = command
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    later = [(t, h) for t, h in viewer.frames if t > since]
                    if later:
                        conn.send(("frame", later[0][0] - since, later[0][1]))
                        break
                    await asyncio.sleep(0.01)
                else:
                    conn.send(("frame", None, None))
            else:
                break
    except Exception as exc:
        conn.send(("failed", repr(exc)))
    finally:
        await viewer.close()


def _viewer_entry(namespace: str, url: str, browser_like: bool, conn: Any) -> None:
    """Run one viewer inside its namespace (a forked child enters it before any socket)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/var/run/netns/{namespace}") as handle:
        if libc.setns(handle.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns failed")
    viewer_process(url, browser_like, conn)


# --- orchestration -----------------------------------------------------------------------


def _spawn(target: Any, *args: Any) -> tuple[multiprocessing.Process, Any]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.Process(target=target, args=(*args, theirs), daemon=True)
    process.start()
    return process, ours


def _spawn_viewer(namespace: str, url: str, browser_like: bool) -> tuple[multiprocessing.Process, Any]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_viewer_entry, args=(namespace, url, browser_like, theirs), daemon=True)
    process.start()
    return process, ours


def _fetch_stats(url: str) -> dict[str, Any]:
    from urllib.request import urlopen

    with urlopen(f"{url}/stats", timeout=5) as reply:
        return json.loads(reply.read())


class StatsPoller:
    """GET /stats once a second on a thread: the relay's viewers per layer over time."""

    COUNTERS = ("layer_switches_total", "nacks_received_total", "retransmits_total",
                "keyframe_requests_total", "plis_sent_total", "drops_total")

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), _fetch_stats(self.url)))
            except Exception:
                pass
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def layers(self) -> list[tuple[float, list[dict[str, Any]]]]:
        found = []
        for at, stats in self.samples:
            video = stats.get("shows", {}).get(str(SHOW), {}).get("tracks", {}).get("video", {})
            if "layers" in video:
                found.append((at, video["layers"]))
        return found

    def counters_between(self, start: float, end: float) -> dict[str, int]:
        inside = [stats for at, stats in self.samples if start <= at <= end]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        totals = {key: last.get(key, 0) - first.get(key, 0) for key in self.COUNTERS}
        video = last.get("shows", {}).get(str(SHOW), {}).get("tracks", {}).get("video", {})
        for key in ("frames_unmapped", "simulcast_unknown_rid_packets",
                    "simulcast_unbound_packets", "simulcast_rtx_without_base"):
            if key in video:
                totals[key] = video[key]  # since the show started
        return totals


def _publisher_frames(conn: Any) -> tuple[float, int]:
    conn.send("frames")
    _, at, frames = conn.recv()
    return at, frames


def run(args: argparse.Namespace, media: Path, kind: str, first_index: int) -> dict[str, Any]:
    """One run: a fresh relay, a publisher of ``kind`` (single or simulcast) and one
    viewer per link, viewers numbered from ``first_index`` (namespaces, addresses)."""
    from bench.simulcast_source import simulcast_publisher_process

    publisher_target = simulcast_publisher_process if kind == "simulcast" else publisher_process
    networks = ViewerNetworks()
    children: list[tuple[multiprocessing.Process, Any]] = []
    poller: Optional[StatsPoller] = None
    try:
        server, server_conn = _spawn(server_process)
        children.append((server, server_conn))
        _, port, server_pid = server_conn.recv()
        url = f"http://127.0.0.1:{port}"
        publisher, publisher_conn = _spawn(publisher_target, url, str(media))
        children.append((publisher, publisher_conn))
        publisher_conn.recv()
        poller = StatsPoller(url)
        viewers = []
        for index, link in enumerate(LINKS, start=first_index):
            namespace, relay_ip = networks.add(index, link)
            process, conn = _spawn_viewer(namespace, f"http://{relay_ip}:{port}", args.viewer == "browser-like")
            children.append((process, conn))
            viewers.append((link, conn))
        for link, conn in viewers:
            reply = conn.recv()
            if reply[0] != "joined":
                raise RuntimeError(f"viewer {link.name}: {reply}")
        joined = time.monotonic()
        time.sleep(args.settle)
        start = time.monotonic()
        end = start + args.seconds
        published_before = _publisher_frames(publisher_conn)
        cpu_before = process_cpu(server_pid), process_cpu(publisher.pid)
        for _, conn in viewers:
            conn.send(("measure", start, end))
        time.sleep(max(0.0, end - time.monotonic()))
        published_after = _publisher_frames(publisher_conn)
        cpu_after = process_cpu(server_pid), process_cpu(publisher.pid)
        publisher_fps = (published_after[1] - published_before[1]) / (published_after[0] - published_before[0])
        rows = []
        for link, conn in viewers:
            reply = conn.recv()
            if reply[0] != "measured":
                raise RuntimeError(f"viewer {link.name}: {reply}")
            rows.append({"viewer": link.name, "publisher_fps": publisher_fps, **reply[1]})
        result: dict[str, Any] = {
            "kind": kind,
            "rows": rows,
            "joined": joined,
            "start": start,
            "end": end,
            "loadavg": load_average(),
            "relay_cpu_pct": 100 * (cpu_after[0] - cpu_before[0]) / args.seconds,
            "publisher_cpu_pct": 100 * (cpu_after[1] - cpu_before[1]) / args.seconds,
        }
        if args.resume:
            publisher_conn.send("stop")
            publisher.join(10)
            time.sleep(2.0)  # the host is away
            publisher, publisher_conn = _spawn(publisher_target, url, str(media))
            children.append((publisher, publisher_conn))
            publisher_conn.recv()
            answered = time.monotonic()
            waits = []
            for link, conn in viewers:
                conn.send(("next_frame_after", answered, 10.0))
            for link, conn in viewers:
                _, wait, height = conn.recv()
                waits.append((link.name, wait, height))
            result["resume"] = waits
            result["answered"] = answered
            time.sleep(max(0.0, answered + AFTER_RESUME - time.monotonic()))
            after = []
            for link, conn in viewers:
                conn.send(("frames_since", answered))
            for link, conn in viewers:
                after.append((link.name, conn.recv()[1]))
            result["after_resume"] = after
        poller.stop()
        result["relay"] = poller.counters_between(start, end + 1.5)
        result["layers"] = [(at - start, layers) for at, layers in poller.layers()]
        return result
    finally:
        if poller is not None:
            poller.stop()
        for process, conn in children:
            try:
                conn.send("stop")
            except Exception:
                pass
        for process, _ in children:
            process.join(5)
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
        networks.close()


# --- report ------------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_side_by_side(results: dict[str, dict[str, Any]]) -> None:
    cols = f"{'fps':>5} {'pub':>5} {'frozen s':>8} {'%':>5} {'height':>6} {'kbit/s':>6} {'loss':>6}"
    kinds = [k for k in RUNS if k in results]
    titles = {"single": "single layer (baseline)", "simulcast": "simulcast (3 layers)"}
    width = len(cols)
    print()
    print(f"{'':<12} " + " | ".join(f"{titles[k]:<{width}}" for k in kinds)
          + (" | simulcast / baseline" if len(kinds) == 2 else ""))
    print(f"{'viewer':<12} " + " | ".join(cols for _ in kinds)
          + (f" | {'fps':>5} {'frozen':>7} {'kbit/s':>6}" if len(kinds) == 2 else ""))
    names = [row["viewer"] for row in results[kinds[0]]["rows"]]
    for name in names:
        cells = []
        rows = {k: next(r for r in results[k]["rows"] if r["viewer"] == name) for k in kinds}
        for kind in kinds:
            row = rows[kind]
            cells.append(
                f"{row['fps']:5.1f} {row['publisher_fps']:5.1f} {row['frozen_s']:8.2f} "
                f"{row['frozen_pct']:5.1f} {row['height']:6.0f} {row['kbit_s']:6.0f} {row['loss_pct']:5.2f}%"
            )
        line = f"{name:<12} " + " | ".join(cells)
        if len(kinds) == 2:
            base, simul = rows["single"], rows["simulcast"]

            def ratio(a: float, b: float, spec: str = "5.2f") -> str:
                return format(b / a, spec) if a else ("  =" if not b else "  inf")

            line += (f" | {ratio(base['fps'], simul['fps']):>5} {ratio(base['frozen_s'], simul['frozen_s']):>7}"
                     f" {ratio(base['kbit_s'], simul['kbit_s']):>6}")
        print(line)
    print("(fps: decoded by the viewer / pub: sent by the publisher over the same window; frozen: "
          "WebRTC's freeze rule; height: median decoded; loss: after repair)")
    print()
    print("the same viewers before decoding (frames as they leave the jitter buffer), and what "
          "decoding cost them:")
    sub = f"{'fps':>5} {'frozen %':>8} {'decoder backlog':>15} {'viewer cpu':>10} {'behind live':>11}"
    print(f"{'':<12} " + " | ".join(f"{titles[k]:<{len(sub)}}" for k in kinds))
    print(f"{'viewer':<12} " + " | ".join(sub for _ in kinds))
    for name in names:
        cells = []
        for kind in kinds:
            row = next(r for r in results[kind]["rows"] if r["viewer"] == name)
            cells.append(f"{row['assembled_fps']:5.1f} {row['assembled_frozen_pct']:8.1f} "
                         f"{row['decoder_backlog_max']:9d} max {row['cpu_pct']:8.0f} % "
                         f"{row.get('behind_max_s', 0):9.1f} s")
        print(f"{name:<12} " + " | ".join(cells))
    print("(decoder backlog: most frames waiting for aiortc's decoder thread at once, sampled every "
          "100 ms; viewer cpu: the viewer process, % of one core; behind live: the most a decoded "
          "frame lagged, beside the viewer's most live frame since joining)")


def print_targets(results: dict[str, dict[str, Any]], resume: bool) -> None:
    print()
    print("targets (issue 13):")
    for kind in (k for k in RUNS if k in results):
        result = results[kind]
        rows = result["rows"]
        smooth = [r for r in rows if r["fps"] >= 0.85 * r["publisher_fps"] and r["frozen_pct"] <= 3.0]
        failing = [f"{r['viewer']}: {r['fps']:.1f}/{r['publisher_fps']:.1f} fps, {r['frozen_pct']:.1f} % frozen"
                   for r in rows if r not in smooth]
        print(f"  {kind}:")
        print(f"    every viewer >= 85 % of the publisher's fps, <= 3 % frozen: "
              f"{_met(len(smooth) == len(rows))}{' (' + '; '.join(failing) + ')' if failing else ''}")
        whole = [r for r in rows if r["assembled_fps"] >= 0.85 * r["publisher_fps"] and r["assembled_frozen_pct"] <= 3.0]
        print(f"    the same, on frames before decoding: {_met(len(whole) == len(rows))}"
              + "".join(f"; {r['viewer']}: {r['assembled_fps']:.1f} fps, {r['assembled_frozen_pct']:.1f} % frozen"
                        for r in rows if r not in whole))
        unshaped = next(r for r in rows if r["viewer"] == "unshaped")
        print(f"    the unshaped viewer gets 720p: median height {unshaped['height']:.0f}: "
              f"{_met(unshaped['height'] >= 720)}")
        if resume:
            waits = [w for _, w, _ in result.get("resume", [])]
            worst = None if not waits or None in waits else max(waits)
            shown = "no frame within 10 s for a viewer" if worst is None else f"worst {worst * 1000:.0f} ms"
            print(f"    publisher back -> next decoded frame <= 1 s: {shown}: "
                  f"{_met(worst is not None and worst <= 1.0)}")


def _segments(values: list[tuple[float, str]]) -> str:
    """'a..b label' runs of equal labels from (time, label) samples."""
    parts = []
    for i, (at, label) in enumerate(values):
        if i == 0 or label != values[i - 1][1]:
            parts.append([at, at, label])
        parts[-1][1] = values[i + 1][0] if i + 1 < len(values) else at + 1
    return ", ".join(f"{a:+.0f}..{b:+.0f}s {label}" for a, b, label in parts)


def print_timelines(result: dict[str, Any]) -> None:
    start, end, joined = result["start"], result["end"], result["joined"]
    print(f"\n{result['kind']}: decoded height per second (t=0: the window opens; from joining, "
          f"{joined - start:+.0f} s, to the window's end):")
    for row in result["rows"]:
        samples = []
        second = joined - start
        frames = [(t - start, h) for t, h in row["frames"]]
        while second < end - start:
            heights = [h for t, h in frames if second <= t < second + 1]
            samples.append((second, f"{max(set(heights), key=heights.count)}p" if heights else "none"))
            second += 1
        print(f"  {row['viewer']:<12} {_segments(samples)}")
        plis = row.get("plis_sent", [])
        print(f"  {'':<12} in the window: {row.get('packets', 0)} video packets, {row.get('duplicates', 0)} "
              f"duplicates, {row.get('nacks_sent', 0)} sequence numbers NACKed, {row.get('stale_frames', 0)} "
              f"stale frames decoded (aiortc's loss figure {row.get('aiortc_loss_pct', 0):.2f} %); "
              f"behind live: up to {row.get('behind_max_s', 0):.1f} s, {row.get('behind_end_s', 0):.1f} s at the end; "
              f"decoder backlog max {row.get('decoder_backlog_max', 0)} frames; viewer CPU "
              f"{row.get('cpu_pct', 0):.0f} % of a core; {row['buffer'] if 'buffer' in row else ''}"
              f"PLIs since joining: {len(plis)}"
              + (f" at {', '.join(f'{t - start:+.1f}' for t in plis[:12])}{' ...' if len(plis) > 12 else ''} s"
                 if plis else ""))
        found = freezes(row["frames"], joined, end)
        if found:
            listed = ", ".join(
                f"{at - start:+.1f}s {gap * 1000:.0f} ms ({before}p->{after}p)" if before != after
                else f"{at - start:+.1f}s {gap * 1000:.0f} ms" for at, gap, before, after in found
            )
            print(f"  {'':<12} freezes since joining: {listed}")
    layers = result.get("layers") or []
    if layers:
        print("  relay's viewers per layer (GET /stats, smallest first; changes only):")
        shown = []
        for at, entries in layers:
            label = " ".join(
                f"{e['rid']}{'x'.join(map(str, e['size'])) if e['size'] else '?'}:{e['viewers']}"
                f"{'' if e['active'] else '(inactive)'}" for e in entries
            )
            if not shown or shown[-1][1] != label:
                shown.append((at, label))
        for at, label in shown:
            print(f"    {at:+6.1f}s  {label}")
        inside = [[e["kbit_s"] for e in entries] for at, entries in layers if 0 <= at <= end - start]
        if inside:
            per_layer = [statistics.mean(r) for r in zip(*inside)]
            print("    layer send rates over the window (kbit/s, smallest first; keyframes included): "
                  + ", ".join(f"{r:.0f}" for r in per_layer))
    print(f"  relay counters over the window: {result.get('relay', {})}")
    print(f"  relay process {result['relay_cpu_pct']:.0f} %, publisher process {result['publisher_cpu_pct']:.0f} % "
          f"of a core over the window; load average at the window's end: {result['loadavg']}")
    for name, wait, height in result.get("resume", []):
        shown = f"{wait * 1000:.0f} ms ({height}p)" if wait is not None else "no frame in 10 s"
        print(f"  publisher back -> next decoded frame, {name}: {shown}")
    answered = result.get("answered")
    for name, frames in result.get("after_resume", []):
        samples = []
        for second in range(int(AFTER_RESUME)):
            heights = [h for t, h in frames if second <= t - answered < second + 1]
            samples.append((float(second), f"{max(set(heights), key=heights.count)}p" if heights else "none"))
        print(f"  after the return (t=0: WHIP answer), {name}: {_segments(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after joining before measuring")
    parser.add_argument("--resume", action="store_true", help="also measure a publisher's return")
    parser.add_argument("--only", choices=RUNS, help="one run: the single-layer baseline or simulcast")
    parser.add_argument("--keyframes", choices=("loop", "pli"), default="loop",
                        help="loop: a keyframe starts each 2 s loop; pli: keyframes only when asked")
    parser.add_argument("--viewer", choices=("aiortc", "browser-like"), default="aiortc",
                        help="aiortc's receiver as it is, or with a browser's loss handling "
                             "(see browser_like_receiver)")
    parser.add_argument("--media", type=Path, help="encoded media to reuse (written if missing)")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--log-switches", action="store_true",
                        help="print the relay's layer switches and their reasons (live.simulcast at DEBUG)")
    args = parser.parse_args()
    if args.log_switches:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(relativeCreated)9.0f ms %(message)s"))
        switches = logging.getLogger("live.simulcast")
        switches.addHandler(handler)
        switches.setLevel(logging.DEBUG)
    if os.geteuid() != 0:
        sys.exit("bench/networks.py needs root (network namespaces, tc, nft)")
    ensure_loopback_namespace()
    # A SIGTERM (timeout, kill) must still run the finally that deletes the viewers'
    # named namespaces, or the next run's names collide.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    multiprocessing.set_start_method("fork")
    print(f"loadavg at start: {load_average()}", flush=True)
    kinds = [args.only] if args.only else list(RUNS)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        media = args.media or Path(scratch) / "media.pickle"
        if not media.exists():
            print("encoding the publisher's media once (three layers; the top one is the single "
                  "layer's):", flush=True)
            encode_media(media, simulcast=True, loop_keyframe=args.keyframes == "loop")
        import pickle

        stored = pickle.loads(media.read_bytes())
        if "layers" not in stored:
            sys.exit(f"{media} holds no simulcast layers: encode it again")
        args.keyframes = "loop" if stored.get("loop_keyframe", True) else "pli"  # the file's
        for number, kind in enumerate(kinds):
            print(f"run: {kind}", flush=True)
            results[kind] = run(args, media, kind, first_index=1 + number * len(LINKS))
    print(f"\nwindow {args.seconds:.0f} s after a {args.settle:.0f} s settle; keyframes: {args.keyframes}; "
          f"viewers: {args.viewer}")
    print_side_by_side(results)
    print_targets(results, args.resume)
    for kind in kinds:
        print_timelines(results[kind])
    print(f"\nloadavg at end: {load_average()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
