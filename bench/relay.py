"""Relay benchmark: live/ versus aiortc's stock MediaRelay pattern, on loopback.

    /work/venv/bin/python bench/relay.py            # full run, ~4 minutes
    /work/venv/bin/python bench/relay.py --quick    # smaller, for a smoke test
    /work/venv/bin/python bench/relay.py --edge --no-baseline   # + an edge in front
    /work/venv/bin/python bench/relay.py --simulcast --no-baseline   # + a simulcast publisher

Re-executes itself in a private network namespace that has only loopback (127.0.0.1
and 127.0.0.2), like ``tests/run``: aioice skips 127.0.0.1, so media flows over
127.0.0.2 and never leaves the machine.

Processes: one relay server (an aiohttp app around ``LiveHub``, or around the stock
pattern), one publisher, and several viewer processes. The publisher sends ~1.5 Mbit/s
720p VP8 encoded once at start-up (2 s, looped) and Opus audio, through aiortc's
``av.Packet`` path, so it spends no CPU encoding; it answers PLIs with an intra-coded
version of the current frame. Viewers are "lean": aiortc does ICE and DTLS, then their
socket callback counts RTP packets and frames from the clear-text RTP headers (no SRTP
decrypt, no decode), and SRTCP goes on to aiortc, where the relay's Sender Reports are
read to measure latency.

Figures (CPU as process CPU time from /proc, so other load on the machine does not
inflate them; wall-clock figures are printed beside them):
- server CPU s per viewer per minute = relay process CPU in the window / viewers * 60
- µs per forwarded packet = relay process CPU / packets the relay sent (all viewers)
- fps, loss: per viewer, over the window; loss from RTP sequence gaps (viewers send no
  NACKs, so nothing is repaired: raw loss)
- join: viewer's offer -> first complete video frame (marker bit) at the viewer, for the
  viewers that joined at that step (i.e. with the previous step's viewers connected)
- latency: publisher send time of a frame (the publisher's RTP/NTP mapping, which the
  relay forwards in its SRs) -> arrival of its last packet at the viewer

``--simulcast`` adds a run with bench/simulcast_source.py's publisher: the same 720p
VP8 plus 640x360 and 320x180 layers, all precoded. A simulcast viewer receives one layer;
lean viewers send no RTCP, so the relay keeps each on its first layer, the top one (the
worst case for CPU). ``--profile`` then profiles that run's relay.

``--edge`` adds a run where the viewers play from a second relay process, an edge that
pulls the show from the origin over WHEP (``LiveHub.pull``) on its first viewer: the
"srv" figures are then the edge's, and the origin's CPU (one viewer: the edge) is
printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import multiprocessing
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import load_average, machine_busy, percentile, process_cpu  # noqa: E402,F401

SHOW = 1
FPS = 30
WIDTH, HEIGHT = 1280, 720
VIDEO_BITRATE = 1_500_000
LOOP_SECONDS = 2


# --- namespace ---------------------------------------------------------------------------


def ensure_loopback_namespace() -> None:
    if os.environ.get("LIVEMALL_IN_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(
            ["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"], stderr=subprocess.DEVNULL
        )
        return
    flag = "-n" if os.geteuid() == 0 else "-rn"
    env = dict(os.environ, LIVEMALL_IN_NETNS="1")
    os.execvpe("unshare", ["unshare", flag, sys.executable, *sys.argv], env)


# --- media -------------------------------------------------------------------------------


# The studio page's three simulcast layers (rid, width, height, bits/s), smallest first
# as Chromium lists them; the top one is the single-layer publisher's picture and rate.
SIMULCAST_LAYERS: tuple[tuple[str, int, int, int], ...] = (
    ("q", 320, 180, 150_000),
    ("h", 640, 360, 500_000),
    ("f", WIDTH, HEIGHT, VIDEO_BITRATE),
)


def encode_media(path: Path, *, simulcast: bool = False, loop_keyframe: bool = True) -> None:
    """2 s of 720p VP8 at ~1.5 Mbit/s, an intra-coded version of every frame (to answer
    PLIs like a browser: a fresh keyframe, ~10x a delta frame), and 1 s of Opus.

    The picture is a textured background panning 4 px a frame with a 256x144 window of
    fresh noise, so delta frames cost bits like real video (white noise everywhere
    would make 300 KB keyframes; a static picture would cost nothing).

    ``simulcast``: also the studio's lower layers (``SIMULCAST_LAYERS``), each scaled
    from the same 720p picture and encoded at its own rate, with intra versions too,
    under ``"layers"`` (smallest first; the last is the 720p ``"video"``/``"keys"``).

    ``loop_keyframe=False``: the looped frames hold no keyframe. By default the 2 s loop
    starts with the encoder's first frame, a keyframe, so the publisher sends one every
    2 s on every layer (which repairs any loss and lands any layer switch within 2 s);
    a browser sends keyframes only when asked. Here the pictures are encoded twice and
    the second pass, all delta frames, is looped: its first frame refers to the first
    pass's last one and, looped, to its own last one, a near-identical picture (a
    decoder cannot tell; the picture drifts a little in the noise window). The
    publisher then starts with an intra frame and sends others only for PLIs."""
    import math
    import random

    import av

    frames = LOOP_SECONDS * FPS
    pan = 4 * frames
    rnd = random.Random(1)
    across = [int(40 * math.sin(x / 37) + 25 * math.sin(x / 11)) for x in range(WIDTH + pan)]
    down = [int(40 * math.cos(y / 29) + 20 * math.sin(y / 7)) for y in range(HEIGHT)]
    grain = bytes(rnd.randrange(24) for _ in range(8192))
    rows = [
        bytes(
            max(0, min(255, 116 + down[y] + across[x] + grain[(x * 7 + y * 131) & 8191]))
            for x in range(WIDTH + pan)
        )
        for y in range(HEIGHT)
    ]
    chroma = bytes([128]) * (WIDTH * HEIGHT // 4)

    def picture(index: int) -> bytes:
        shift = index * 4
        luma = bytearray(b"".join(row[shift : shift + WIDTH] for row in rows))
        noise = os.urandom(256 * 144)
        for line in range(144):
            offset = (200 + line) * WIDTH + 500
            luma[offset : offset + 256] = bytes(64 + (b >> 1) for b in noise[line * 256 : line * 256 + 256])
        return bytes(luma)

    def encoder(width: int, height: int, bitrate: int) -> Any:
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = bitrate
        codec.time_base = fractions.Fraction(1, FPS)
        codec.gop_size = 3000
        codec.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "lag-in-frames": "0",
            "minrate": str(bitrate),
            "maxrate": str(bitrate),
            "bufsize": str(bitrate),
            "undershoot-pct": "95",
            "overshoot-pct": "15",
            "max-intra-rate": "1200",
        }
        return codec

    sizes = SIMULCAST_LAYERS if simulcast else (("f", WIDTH, HEIGHT, VIDEO_BITRATE),)
    coders = [(encoder(w, h, rate), encoder(w, h, 4 * rate)) for _, w, h, rate in sizes]
    encoded: list[tuple[list[bytes], list[bytes]]] = [([], []) for _ in sizes]
    passes = 1 if loop_keyframe else 2
    for index in range(passes * frames):
        full = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        full.planes[0].update(picture(index % frames))
        full.planes[1].update(chroma)
        full.planes[2].update(chroma)
        for (_, width, height, _), (inter, intra), (video, keys) in zip(sizes, coders, encoded):
            frame = full if (width, height) == (WIDTH, HEIGHT) else full.reformat(width=width, height=height)
            frame.pts = index
            frame.time_base = inter.time_base
            coded = b"".join(bytes(p) for p in inter.encode(frame))
            frame.pict_type = av.video.frame.PictureType.I
            key = b"".join(bytes(p) for p in intra.encode(frame))
            if index >= (passes - 1) * frames:  # the looped pass
                video.append(coded)
                keys.append(key)
    for video, keys in encoded:
        if loop_keyframe:
            keys[0] = video[0]  # the intra encoder's very first frame ignores its rate limit
        assert loop_keyframe or not any(frame[0] & 1 == 0 for frame in video), "a keyframe in the loop"

    opus = av.CodecContext.create("libopus", "w")
    opus.sample_rate, opus.layout, opus.format = 48000, "stereo", "s16"
    opus.bit_rate = 64000
    opus.time_base = fractions.Fraction(1, 48000)
    audio = []
    for index in range(50):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(os.urandom(960 * 4))
        frame.sample_rate = 48000
        frame.pts = index * 960
        frame.time_base = opus.time_base
        audio += [bytes(p) for p in opus.encode(frame)]
    for (rid, width, height, _), (video, keys) in zip(sizes, encoded):
        video_bits = sum(map(len, video)) * 8 / LOOP_SECONDS
        print(
            f"  video {width}x{height}{f' (rid {rid})' if simulcast else ''}:"
            f" {video_bits / 1e6:.2f} Mbit/s, delta frames ~{statistics.median(map(len, video[1:])) / 1e3:.1f} KB,"
            f" keyframes for PLIs ~{statistics.median(map(len, keys)) / 1e3:.0f} KB",
            flush=True,
        )
    media: dict[str, Any] = {
        "video": encoded[-1][0],
        "keys": encoded[-1][1],
        "audio": audio,
        "loop_keyframe": loop_keyframe,
    }
    if simulcast:
        media["layers"] = [
            {"rid": rid, "width": width, "height": height, "video": video, "keys": keys}
            for (rid, width, height, _), (video, keys) in zip(sizes, encoded)
        ]
    path.write_bytes(pickle.dumps(media))


# --- relay server process ------------------------------------------------------------------


def server_process(
    mode: str, conn: Any, profile: Optional[str] = None, options: Optional[dict[str, Any]] = None
) -> None:
    if profile is None:
        asyncio.run(_serve(mode, conn, options or {}))
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.runcall(asyncio.run, _serve(mode, conn, options or {}))
    profiler.dump_stats(profile)


class StockRelay:
    """aiortc's MediaRelay pattern: decode the publisher once, encode per viewer."""

    def __init__(self) -> None:
        from aiortc.contrib.media import MediaRelay

        self.relay = MediaRelay()
        self.tracks: dict[str, Any] = {}
        self.pcs: set[Any] = set()
        self.sessions = 0

    async def publish(self, show_id: int, sdp: str) -> tuple[str, str]:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection()
        self.pcs.add(pc)
        pc.on("track", lambda track: self.tracks.__setitem__(track.kind, track))
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return "publisher", pc.localDescription.sdp

    async def play(self, show_id: int, sdp: str) -> tuple[str, str]:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection()
        self.pcs.add(pc)
        for kind in ("video", "audio"):
            if kind in self.tracks:
                pc.addTrack(self.relay.subscribe(self.tracks[kind], buffered=False))
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        self.sessions += 1
        return f"v{self.sessions}", pc.localDescription.sdp

    def stats(self) -> dict[str, Any]:
        return {"viewers": len(self.pcs) - 1}

    async def close(self) -> None:
        await asyncio.gather(*(pc.close() for pc in self.pcs), return_exceptions=True)


async def _serve(mode: str, conn: Any, options: dict[str, Any]) -> None:
    import aiohttp
    from aiohttp import web

    origin = options.pop("origin", None)  # mode "edge": the origin relay's URL
    http: Optional[aiohttp.ClientSession] = None
    if mode in ("relay", "edge"):
        from live.hub import LiveHub

        # Lean viewers send no receiver reports, so the RTCP-silence reaper is off here.
        hub: Any = LiveHub(viewer_timeout=3600.0, viewer_connect_timeout=600.0, media_timeout=30.0, **options)
    else:
        hub = StockRelay()

    async def send_offer(offer: str) -> str:
        assert http is not None
        async with http.post(f"{origin}/whep/{SHOW}", data=offer) as reply:
            assert reply.status == 201, await reply.text()
            return await reply.text()

    async def whip(request: web.Request) -> web.Response:
        session = await hub.publish(int(request.match_info["show"]), await request.text())
        sid, answer = (session.id, session.answer_sdp) if mode != "stock" else session
        return web.Response(status=201, text=answer, headers={"Location": f"/whip/1/{sid}"})

    async def whep(request: web.Request) -> web.Response:
        show = int(request.match_info["show"])
        if mode == "edge" and not hub.is_pulled(show):
            await hub.pull(show, send_offer)  # concurrent first viewers share one pull
        session = await hub.play(show, await request.text())
        sid, answer = (session.id, session.answer_sdp) if mode != "stock" else session
        return web.Response(status=201, text=answer, headers={"Location": f"/whep/1/{sid}"})

    async def stats(request: web.Request) -> web.Response:
        data = hub.stats()
        shows = data.pop("shows", None) or {}
        video = shows.get(SHOW, {}).get("tracks", {}).get("video", {})
        if "layers" in video:  # simulcast: viewers per layer, smallest first
            data["layers"] = video["layers"]
        return web.json_response(data)

    if origin is not None:
        http = aiohttp.ClientSession()
    app = web.Application()
    app.router.add_post("/whip/{show}", whip)
    app.router.add_post("/whep/{show}", whep)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    conn.send(("ready", port, os.getpid()))
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    await hub.close()
    if http is not None:
        await http.close()
    await runner.cleanup()


# --- publisher process ---------------------------------------------------------------------


def precoded_track(kind: str, packets: list[bytes], rate: int, step: int,
                   keys: Optional[list[bytes]] = None) -> Any:
    """An aiortc track that hands its sender precoded media (``av.Packet``) in real
    time, looping ``packets``; after ``want_keyframe`` is set, the next one comes from
    ``keys`` (the intra-coded version of the same frame). ``index``: packets sent."""
    import av
    from aiortc.mediastreams import MediaStreamTrack

    class Precoded(MediaStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.kind = kind
            self.index = 0
            self.start: Optional[float] = None
            self.want_keyframe = False

        async def recv(self) -> Any:
            if self.start is None:
                self.start = time.time()
            wait = self.start + self.index * step / rate - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            position = self.index % len(packets)
            data = packets[position]
            if self.want_keyframe and keys is not None:
                self.want_keyframe = False
                data = keys[position]
            packet = av.Packet(data)
            packet.pts = self.index * step
            packet.time_base = fractions.Fraction(1, rate)
            self.index += 1
            return packet

    return Precoded()


async def serve_publisher_commands(conn: Any, frames_sent: Any) -> None:
    """A publisher process's side of its pipe, until "stop": "frames" is answered with
    (monotonic now, video frames sent so far), for the publisher's own frame rate."""
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command != "frames":
            return
        conn.send(("frames", time.monotonic(), frames_sent()))


def publisher_process(url: str, media_path: str, conn: Any) -> None:
    asyncio.run(_publish(url, media_path, conn))


async def _publish(url: str, media_path: str, conn: Any) -> None:
    import aiohttp
    from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    from live import aiortc_hooks

    media = pickle.loads(Path(media_path).read_bytes())
    video = precoded_track("video", media["video"], 90000, 90000 // FPS, keys=media["keys"])
    # Looped media without a keyframe (encode_media(loop_keyframe=False)): start with one.
    video.want_keyframe = not media.get("loop_keyframe", True)
    audio = precoded_track("audio", media["audio"], 48000, 960)
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver(video, direction="sendonly")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "VP8"]
    )
    aiortc_hooks.on_keyframe_request(
        transceiver.sender, lambda: setattr(video, "want_keyframe", True)
    )
    pc.addTransceiver(audio, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/whip/{SHOW}", data=pc.localDescription.sdp) as reply:
            answer = await reply.text()
            assert reply.status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    conn.send(("ready", os.getpid()))
    await serve_publisher_commands(conn, lambda: video.index)
    await pc.close()


# --- viewer processes ----------------------------------------------------------------------


class LeanViewer:
    """aiortc for ICE/DTLS; RTP counted from clear-text headers in the socket callback."""

    def __init__(self) -> None:
        from aiortc import RTCPeerConnection

        self.pc = RTCPeerConnection()
        self.video_pt = self.audio_pt = -1
        self.first_frame: Optional[asyncio.Future[float]] = None
        self.join_time: Optional[float] = None
        self.window = (0.0, 0.0)
        self.reset()
        self.report: Optional[tuple[int, int]] = None  # relay SR: (ntp, rtp) of video
        self.last_rtp_at = 0.0  # monotonic: the last RTP packet of any kind

    def reset(self) -> None:
        self.counts = {"video": [0, None, None, 0], "audio": [0, None, None, 0]}
        # per kind: received, first extended seq, last extended seq, unwrap cycles
        self.frames = 0
        self.arrivals: list[tuple[int, float]] = []

    async def join(self, http: Any, url: str) -> None:
        from aiortc import RTCSessionDescription

        from live import aiortc_hooks

        loop = asyncio.get_running_loop()
        self.first_frame = loop.create_future()
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        started = time.monotonic()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        for transceiver in self.pc.getTransceivers():
            connection = transceiver.receiver.transport.transport._connection
            for protocol in connection._protocols:
                protocol.datagram_received = self._wrap(protocol.datagram_received)
        async with http.post(f"{url}/whep/{SHOW}", data=self.pc.localDescription.sdp) as reply:
            answer = await reply.text()
            if reply.status != 201:
                raise RuntimeError(answer)
        kind = None
        for line in answer.splitlines():
            if line.startswith("m="):
                kind = line[2:7]
                payload_type = int(line.split()[3])
                if kind == "video":
                    self.video_pt = payload_type
                elif kind == "audio":
                    self.audio_pt = payload_type
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video":
                aiortc_hooks.observe_sender_reports(transceiver.receiver, self._on_report)
        first = await asyncio.wait_for(self.first_frame, 15)
        self.join_time = first - started

    def _on_report(self, packet: Any) -> None:
        self.report = (packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)

    def _wrap(self, original: Any) -> Any:
        monotonic, wall = time.monotonic, time.time

        def datagram_received(data: bytes, addr: Any) -> None:
            second = data[1]
            if 127 < data[0] < 192 and not 192 <= second <= 208:
                now = monotonic()
                self.last_rtp_at = now
                payload_type = second & 0x7F
                if payload_type == self.video_pt:
                    if second & 0x80:
                        if self.first_frame is not None and not self.first_frame.done():
                            self.first_frame.set_result(now)
                        if self.window[0] <= now < self.window[1]:
                            self.frames += 1
                            self.arrivals.append((int.from_bytes(data[4:8], "big"), wall()))
                    kind = "video"
                elif payload_type == self.audio_pt:
                    kind = "audio"
                else:
                    return
                if self.window[0] <= now < self.window[1]:
                    count = self.counts[kind]
                    sequence_number = data[2] << 8 | data[3]
                    last = count[2]
                    if last is None:
                        extended = sequence_number
                        count[1] = extended
                    else:
                        extended = (last & ~0xFFFF) | sequence_number
                        if extended < last - 0x8000:
                            extended += 0x10000
                        elif extended > last + 0x8000:
                            extended -= 0x10000
                    if last is None or extended > last:
                        count[2] = extended
                    count[0] += 1
                return
            original(data, addr)

        return datagram_received

    def results(self) -> dict[str, Any]:
        received = expected = 0
        for count in self.counts.values():
            if count[1] is not None:
                received += count[0]
                expected += count[2] - count[1] + 1
        latencies = []
        if self.report is not None:
            ntp, rtp = self.report
            sent_at = (ntp >> 32) + (ntp & 0xFFFFFFFF) / 2**32 - 2208988800
            for timestamp, arrived in self.arrivals:
                delta = (timestamp - rtp + 2**31) % 2**32 - 2**31
                latencies.append(arrived - (sent_at + delta / 90000))
        return {
            "frames": self.frames,
            "received": received,
            "expected": expected,
            "latencies": latencies,
            # a viewer that got nothing in the window: how long before its end it last did
            "silent_s": self.window[1] - self.last_rtp_at if received == 0 else 0.0,
        }


def viewers_process(url: str, conn: Any) -> None:
    asyncio.run(_viewers(url, conn))


async def _viewers(url: str, conn: Any) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    viewers: list[LeanViewer] = []
    async with aiohttp.ClientSession() as http:
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command[0] == "join":
                joined, failures = [], 0
                for _ in range(command[1]):
                    viewer = LeanViewer()
                    try:
                        await viewer.join(http, url)
                    except Exception as exc:
                        failures += 1
                        print(f"viewer failed to join: {exc!r}", file=sys.stderr)
                        await viewer.pc.close()
                        continue
                    viewers.append(viewer)
                    joined.append(viewer.join_time)
                conn.send(("joined", joined, failures))
            elif command[0] == "measure":
                start, end = command[1], command[2]
                for viewer in viewers:
                    viewer.reset()
                    viewer.window = (start, end)
                usage = os.times()
                await asyncio.sleep(max(0.0, end - time.monotonic()) + 0.3)
                after = os.times()
                cpu = (after.user + after.system) - (usage.user + usage.system)
                conn.send(("measured", [v.results() for v in viewers], cpu))
            else:
                await asyncio.gather(*(v.pc.close() for v in viewers), return_exceptions=True)
                conn.send(("closed",))
                return


# --- orchestration -------------------------------------------------------------------------


def fetch_stats(url: str) -> dict[str, Any]:
    from urllib.request import urlopen

    with urlopen(f"{url}/stats", timeout=10) as reply:
        return json.loads(reply.read())


def run_mode(
    mode: str,
    steps: list[int],
    media_path: Path,
    window: float,
    profile: Optional[str] = None,
    options: Optional[dict[str, Any]] = None,
    simulcast: bool = False,
) -> list[dict[str, Any]]:
    """``simulcast``: the publisher is bench/simulcast_source.py (three layers); the rows
    are labelled mode "simulcast". Lean viewers send no RTCP, so the relay keeps each on
    its first layer, the top one: the most packets per viewer."""
    context = multiprocessing.get_context("spawn")
    server_conn, child = context.Pipe()
    server = context.Process(
        target=server_process,
        args=("relay" if mode == "edge" else mode, child, profile if mode != "edge" else None, options),
        daemon=True,
    )
    server.start()
    _, port, server_pid = server_conn.recv()
    url = f"http://127.0.0.1:{port}"
    publisher_conn, child = context.Pipe()
    if simulcast:
        from bench.simulcast_source import simulcast_publisher_process

        publish: Any = simulcast_publisher_process
    else:
        publish = publisher_process
    publisher = context.Process(target=publish, args=(url, str(media_path), child), daemon=True)
    publisher.start()
    publisher_conn.recv()
    time.sleep(2.5 if simulcast else 1.0)  # simulcast: every layer mapped (its first SR)
    origin_pid = None
    edge_conn = edge = None
    if mode == "edge":
        # The viewers play from an edge process that pulls the show from this origin.
        origin_pid, origin_url = server_pid, url
        edge_conn, child = context.Pipe()
        edge = context.Process(
            target=server_process,
            args=("edge", child, profile, dict(options or {}, origin=origin_url)),
            daemon=True,
        )
        edge.start()
        _, edge_port, server_pid = edge_conn.recv()
        url = f"http://127.0.0.1:{edge_port}"

    workers = []
    for _ in range(min(4, max(steps))):
        conn, child = context.Pipe()
        process = context.Process(target=viewers_process, args=(url, child), daemon=True)
        process.start()
        workers.append((process, conn))

    rows = []
    connected = 0
    for target in steps:
        adding = target - connected
        shares = [adding // len(workers) + (i < adding % len(workers)) for i in range(len(workers))]
        busy = [(w, s) for w, s in zip(workers, shares) if s]
        join_started = time.monotonic()
        for (_, conn), share in busy:
            conn.send(("join", share))
        joins, failures = [], 0
        for (_, conn), _share in busy:
            _, joined, failed = conn.recv()
            joins += joined
            failures += failed
        connected += len(joins)
        join_wall = time.monotonic() - join_started
        time.sleep(2.0)  # settle

        start = time.monotonic() + 0.5
        end = start + window
        for _, conn in workers:
            conn.send(("measure", start, end))
        time.sleep(max(0.0, start - time.monotonic()))
        cpu_before, stats_before, busy_before = process_cpu(server_pid), fetch_stats(url), machine_busy()
        publisher_cpu_before = process_cpu(publisher.pid)
        origin_cpu_before = process_cpu(origin_pid) if origin_pid else 0.0
        time.sleep(max(0.0, end - time.monotonic()))
        cpu_after, stats_after, busy_after = process_cpu(server_pid), fetch_stats(url), machine_busy()
        publisher_cpu = process_cpu(publisher.pid) - publisher_cpu_before
        origin_cpu = process_cpu(origin_pid) - origin_cpu_before if origin_pid else None
        results, viewer_cpu = [], 0.0
        for _, conn in workers:
            _, measured, cpu = conn.recv()
            results += measured
            viewer_cpu += cpu

        cpu = cpu_after - cpu_before
        forwarded = stats_after.get("packets_forwarded_total", 0) - stats_before.get(
            "packets_forwarded_total", 0
        )
        received = sum(r["received"] for r in results)
        fps = [r["frames"] / window for r in results]
        losses = [1 - r["received"] / r["expected"] if r["expected"] else 1.0 for r in results]
        latencies = [lat for r in results for lat in r["latencies"]]
        machine = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
        rows.append(
            {
                "mode": "simulcast" if simulcast else mode,
                "viewers": connected,
                "join_failures": failures,
                "window_s": window,
                "server_cpu_s": cpu,
                "cpu_s_per_viewer_min": cpu / window * 60 / connected,
                "core_pct_per_viewer": 100 * cpu / window / connected,
                "server_core_pct": 100 * cpu / window,
                "us_per_packet": 1e6 * cpu / (forwarded or received or 1),
                "packets_forwarded": forwarded,
                "packets_received": received,
                "fps_mean": statistics.mean(fps) if fps else 0.0,
                "fps_min": min(fps) if fps else 0.0,
                "loss_mean": statistics.mean(losses) if losses else 1.0,
                "loss_max": max(losses) if losses else 1.0,
                "join_p50_ms": 1000 * percentile(joins, 0.5),
                "join_p95_ms": 1000 * percentile(joins, 0.95),
                "join_wall_s": join_wall,
                "latency_p50_ms": 1000 * percentile(latencies, 0.5) if mode != "stock" else None,
                "latency_p95_ms": 1000 * percentile(latencies, 0.95) if mode != "stock" else None,
                # mode "edge": the origin relay's CPU (its one viewer is the edge)
                "origin_core_pct": 100 * origin_cpu / window if origin_cpu is not None else None,
                "viewer_procs_core_pct": 100 * viewer_cpu / window,
                "publisher_core_pct": 100 * publisher_cpu / window,
                "machine_busy_pct": 100 * machine * os.cpu_count(),
                "loadavg": load_average(),  # at the window's end: 1, 5, 15 min
                # viewers that received no packet at all in the window: seconds since their last
                "silent_viewers": [round(r["silent_s"], 1) for r in results if r["silent_s"]],
                # the relay's own count at the window's end: viewers, and those still
                # waiting for a keyframe (counted in no layer below)
                "relay_viewers": stats_after.get("viewers"),
                "relay_waiting": stats_after.get("viewers_waiting_for_keyframe"),
                # simulcast: viewers per layer at the window's end (rid, size, viewers)
                "layers": [
                    (layer["rid"], layer["size"], layer["viewers"]) for layer in stats_after.get("layers", [])
                ],
                "relay_stats": {
                    k: stats_after.get(f"{k}_total", 0) - stats_before.get(f"{k}_total", 0)
                    for k in (
                        "frames_received",
                        "frames_skipped",
                        "drops",
                        "retransmits",
                        "keyframe_requests",
                        "plis_sent",
                    )
                },
            }
        )
        print(f"  {mode:10s} N={connected:3d} done: {json.dumps(rows[-1], default=str)}", flush=True)

    for _, conn in workers:
        conn.send(("close",))
    for process, conn in workers:
        conn.recv()
        process.join(10)
    if edge is not None and edge_conn is not None:
        edge_conn.send("stop")
        edge.join(20)
    publisher_conn.send("stop")
    publisher.join(10)
    server_conn.send("stop")
    server.join(20)
    return rows


def print_table(rows: list[dict[str, Any]], wall: float) -> None:
    def fmt(value: Any, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    header = (
        f"{'pattern':<22}{'N':>4}{'srv cpu s':>10}{'%core':>7}{'viewers':>9}{'µs/pkt':>8}"
        f"{'fps':>6}{'fps min':>8}{'loss':>7}{'join p50':>9}{'p95 ms':>7}{'lat p95':>8}"
        f"{'srv %':>7}"
    )
    units = (
        f"{'':<22}{'':>4}{'/viewer/min':>10}{'/viewer':>7}{'per core':>9}{'':>8}"
        f"{'mean':>6}{'':>8}{'mean':>7}{'ms':>9}{'':>7}{'ms':>8}{'core':>7}"
    )
    print()
    print(header)
    print(units)
    print("-" * len(header))
    for row in rows:
        label = {"relay": "live/ relay", "edge": "live/ edge", "simulcast": "live/ relay, simulcast"}.get(
            row["mode"], "aiortc MediaRelay"
        )
        per_core = 100 / row["core_pct_per_viewer"] if row["core_pct_per_viewer"] else float("inf")
        print(
            f"{label:<22}{row['viewers']:>4}{row['cpu_s_per_viewer_min']:>10.3f}"
            f"{row['core_pct_per_viewer']:>7.2f}{per_core:>9.0f}{row['us_per_packet']:>8.1f}"
            f"{row['fps_mean']:>6.1f}{row['fps_min']:>8.1f}{100 * row['loss_mean']:>6.2f}%"
            f"{row['join_p50_ms']:>9.0f}{row['join_p95_ms']:>7.0f}"
            f"{fmt(row['latency_p95_ms'], '.0f'):>8}{row['server_core_pct']:>7.1f}"
        )
    relay = [r for r in rows if r["mode"] == "relay"]
    stock = [r for r in rows if r["mode"] == "stock"]
    edge = [r for r in rows if r["mode"] == "edge"]
    simulcast = [r for r in rows if r["mode"] == "simulcast"]
    if simulcast:
        print()
        print("simulcast publisher (3 layers in, each viewer sent one) beside the single-layer one:")
        print(f"  {'N':>4} {'%core single':>13} {'simulcast':>10} {'ratio':>6}   {'µs/pkt single':>13} "
              f"{'simulcast':>10}   viewers per layer at the end (rid size: viewers)")
        single = {r["viewers"]: r for r in relay}
        for row in simulcast:
            base = single.get(row["viewers"])
            layers = ", ".join(f"{rid} {'x'.join(map(str, size)) if size else '?'}: {n}" for rid, size, n in row["layers"])
            print(
                f"  {row['viewers']:>4} {fmt(base and base['server_core_pct'], '13.1f'):>13} "
                f"{row['server_core_pct']:10.1f} "
                f"{fmt(base and row['server_core_pct'] / base['server_core_pct'], '6.2f'):>6}   "
                f"{fmt(base and base['us_per_packet'], '13.1f'):>13} {row['us_per_packet']:10.1f}   {layers}"
            )
    if edge:
        print()
        print("origin CPU (% of one core) with the viewers on the origin / behind one edge:")
        direct = {r["viewers"]: r["server_core_pct"] for r in relay}
        for row in edge:
            alone = direct.get(row["viewers"])
            print(
                f"  N={row['viewers']:<4} origin {fmt(alone, '5.1f')} / {row['origin_core_pct']:5.1f}"
                f"   (edge {row['server_core_pct']:5.1f})"
            )
    if relay and stock:
        baseline = min(r["core_pct_per_viewer"] for r in stock)
        print()
        print(
            "ratio, server CPU per viewer (MediaRelay at its cheapest, "
            f"{baseline:.1f}% core/viewer, / live relay):"
        )
        for row in relay:
            print(f"  N={row['viewers']:<4} {baseline / row['core_pct_per_viewer']:8.0f}x")
    print()
    print("context per step (% of one core over the window; 2-core machine, shared):")
    for row in rows:
        print(
            f"  {row['mode']:<10} N={row['viewers']:<4} relay {row['server_core_pct']:5.1f}  "
            f"publisher {row['publisher_core_pct']:5.1f}  viewer procs "
            f"{row['viewer_procs_core_pct']:5.1f}  whole machine {row['machine_busy_pct']:5.1f}  "
            f"loadavg {row['loadavg']}  "
            f"joins took {row['join_wall_s']:.1f}s wall  failures {row['join_failures']}  "
            f"latency p50 {fmt(row['latency_p50_ms'], '.0f')} ms  relay {row['relay_stats']}  "
            f"viewers {row.get('relay_viewers')} (waiting for a keyframe {row.get('relay_waiting')})"
            + (f"  viewers that got no packet in the window, silent for (s): {row['silent_viewers']}"
               if row.get("silent_viewers") else "")
        )
    print_targets(rows)
    print()
    print(f"wall time {wall:.0f} s; CPU figures are process CPU time (/proc), not wall time.")
    print("MediaRelay re-encodes (aiortc default 500 kbit/s target), so its latency is n/a:")
    print("its RTP timestamps and SRs describe its encoder, not the publisher.")


def print_targets(rows: list[dict[str, Any]]) -> None:
    """Issue 9's targets against this run's rows; issue 13's for simulcast rows."""
    relay = [r for r in rows if r["mode"] == "relay"]
    stock = [r for r in rows if r["mode"] == "stock"]
    simulcast = [r for r in rows if r["mode"] == "simulcast"]
    if simulcast:
        largest = max(simulcast, key=lambda r: r["viewers"])
        per_core = 100 / largest["core_pct_per_viewer"] if largest["core_pct_per_viewer"] else 0.0
        loss = 100 * largest["loss_max"]
        print()
        print(f"simulcast target (issue 13; largest step N={largest['viewers']}):")
        print(
            f"  >= 300 viewers/core at N=100 (at <= 1% loss, as issue 9's): {per_core:.0f} viewers/core, "
            f"worst viewer loss {loss:.2f}%, slowest viewer {largest['fps_min']:.1f} fps: "
            f"{'met' if per_core >= 300 and largest['viewers'] >= 100 and loss <= 1 else 'NOT met'}"
            + ("" if largest["viewers"] >= 100 else " (no step at N=100)")
        )
    if not relay:
        return
    largest = max(relay, key=lambda r: r["viewers"])

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print()
    print(f"targets (largest step N={largest['viewers']}):")
    per_core = 100 / largest["core_pct_per_viewer"] if largest["core_pct_per_viewer"] else 0.0
    loss = 100 * largest["loss_max"]
    print(
        f"  >= 200 viewers/core at <= 1% loss: {per_core:.0f} viewers/core, "
        f"worst viewer loss {loss:.2f}%: {verdict(per_core >= 200 and loss <= 1)}"
    )
    if stock:
        ratio = min(r["core_pct_per_viewer"] for r in stock) / largest["core_pct_per_viewer"]
        print(f"  >= 100x less CPU/viewer than MediaRelay: {ratio:.0f}x: {verdict(ratio >= 100)}")
    worst = max(r["us_per_packet"] for r in relay)
    print(
        f"  <= 25 us CPU per forwarded packet: {largest['us_per_packet']:.1f} us at "
        f"N={largest['viewers']}, worst step {worst:.1f} us: {verdict(worst <= 25)}"
    )
    after_50 = [b for a, b in zip(relay, relay[1:]) if a["viewers"] == 50]
    if after_50:
        p95 = after_50[0]["join_p95_ms"]
        print(f"  join p95 <= 500 ms with 50 connected: {p95:.0f} ms: {verdict(p95 <= 500)}")
    else:
        print("  join p95 <= 500 ms with 50 connected: n/a (no step after N=50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=5,10 and a 5 s window")
    parser.add_argument("--window", type=float, default=None, help="measurement seconds")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--steps", help="viewer counts for live/, e.g. 10,50,100")
    parser.add_argument("--no-baseline", action="store_true", help="skip MediaRelay")
    parser.add_argument("--profile", help="cProfile the live/ relay process into this file")
    parser.add_argument("--replay-window", type=float, help="LiveHub(replay_window=...)")
    parser.add_argument("--keyframe-interval", type=float, help="LiveHub(keyframe_interval=...)")
    parser.add_argument("--edge", action="store_true",
                        help="also run the steps with the viewers behind an edge relay process")
    parser.add_argument("--simulcast", action="store_true",
                        help="also run the steps with a three-layer simulcast publisher")
    parser.add_argument("--no-single", action="store_true",
                        help="skip the single-layer live/ relay steps (with --simulcast or --edge)")
    args = parser.parse_args()
    ensure_loopback_namespace()
    started = time.monotonic()
    print(f"loadavg at start: {load_average()}", flush=True)

    relay_steps = [5, 10] if args.quick else [10, 50, 100]
    if args.steps:
        relay_steps = [int(n) for n in args.steps.split(",")]
    stock_steps = [] if args.no_baseline else [1] if args.quick else [1, 2]
    window = args.window or (5.0 if args.quick else 15.0)
    with tempfile.TemporaryDirectory() as scratch:
        media = Path(scratch) / "media.pickle"
        print(f"encoding 2 s of 720p VP8{' and its two lower layers' if args.simulcast else ''} once...",
              flush=True)
        encode_media(media, simulcast=args.simulcast)
        options = {}
        if args.replay_window is not None:
            options["replay_window"] = args.replay_window
        if args.keyframe_interval is not None:
            options["keyframe_interval"] = args.keyframe_interval
        rows = []
        single_profile = None if args.simulcast else args.profile  # --profile: the simulcast relay
        if not args.no_single:
            rows += run_mode("relay", relay_steps, media, window, single_profile, options)
        if args.simulcast:
            rows += run_mode("relay", relay_steps, media, window, args.profile, options, simulcast=True)
        if args.edge:
            rows += run_mode("edge", relay_steps, media, window, None, options)
        if stock_steps:
            rows += run_mode("stock", stock_steps, media, window)
    print_table(rows, time.monotonic() - started)
    print(f"loadavg at end: {load_average()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
