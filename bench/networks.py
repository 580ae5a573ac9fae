"""Viewers on real-world links: one publisher, viewers each behind a shaped link.

    python bench/networks.py                 # every scenario, ~2 minutes
    python bench/networks.py --seconds 10    # shorter windows

Re-executes itself in a private network namespace with only loopback (the "server
side": the relay and the publisher, over 127.0.0.2). Each viewer gets a network
namespace of its own behind a veth pair (10.99.N.0/30, removed on exit), shaped on the
relay's side with `tc ... tbf` (a rate cap: the viewer's downlink) and in the viewer's
namespace with `nft ... numgen random mod 100 < N drop` (random loss; this kernel has
no netem). Nothing leaves the machine.

The publisher sends precoded 720p VP8 (~1.5 Mbit/s) and Opus (bench/relay.py's media)
and answers PLIs with a keyframe. Each viewer is an aiortc peer that decodes the
video (so NACK, PLI and the jitter buffer work as in a real receiver) and reports, over
a measurement window: decoded frames per second beside the publisher's, the time
frozen (WebRTC's definition, as Chromium's totalFreezesDuration: an inter-frame gap
longer than max(3 x the mean frame interval, the mean + 150 ms)), the decoded picture
height, the received video bitrate and the loss left after repair (sequence numbers
never received, retransmissions included).

Scenarios (viewers): unshaped; 700 kbit/s; 5 % random loss. Targets from issue 13:
every viewer decodes >= 85 % of the publisher's frame rate with <= 3 % of the time
frozen; the unshaped viewer gets 720p.

``--resume`` also kills the publisher mid-run and publishes again, and prints the time
from the new publisher's WHIP answer to each viewer's next decoded frame (target 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.relay import SHOW, encode_media, ensure_loopback_namespace, publisher_process  # noqa: E402

PUBLISHER_FPS = 30


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

    def add(self, index: int, link: Link) -> tuple[str, str]:
        """Create the viewer's namespace; returns (namespace, the relay's address)."""
        name = f"lmbench-{os.getpid()}-{index}"
        ours, theirs = f"lmr{index}", f"lmv{index}"
        relay_ip, viewer_ip = f"10.99.{index}.1", f"10.99.{index}.2"
        _ip("netns", "add", name)
        self.names.append(name)
        _ip("link", "add", ours, "type", "veth", "peer", "name", theirs, "netns", name)
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
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
        self.names.clear()


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


class DecodingViewer:
    """An aiortc receiver that decodes; records each decoded frame and the RTP bytes."""

    def __init__(self) -> None:
        from aiortc import RTCPeerConnection

        self.pc = RTCPeerConnection()
        self.frames: list[tuple[float, int]] = []  # (monotonic arrival, height)
        self.video_bytes: list[tuple[float, int]] = []
        self.video_pt = -1
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    async def join(self, url: str) -> None:
        import aiohttp
        from aiortc import RTCSessionDescription

        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._count_video_bytes()
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/whep/{SHOW}", data=self.pc.localDescription.sdp) as reply:
                answer = await reply.text()
                if reply.status != 201:
                    raise RuntimeError(f"WHEP {reply.status}: {answer}")
        for line in answer.splitlines():
            if line.startswith("m=video"):
                self.video_pt = int(line.split()[3])
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def _count_video_bytes(self) -> None:
        # Bytes on the wire per video packet, read before aiortc decrypts (bitrate only).
        for transceiver in self.pc.getTransceivers():
            connection = transceiver.receiver.transport.transport._connection
            for protocol in connection._protocols:
                original = protocol.datagram_received

                def received(data: bytes, addr: Any, original: Any = original) -> None:
                    if len(data) > 12 and 127 < data[0] < 192 and (data[1] & 0x7F) == self.video_pt:
                        self.video_bytes.append((time.monotonic(), len(data)))
                    original(data, addr)

                protocol.datagram_received = received

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


def window_figures(frames: list[tuple[float, int]], video_bytes: list[tuple[float, int]],
                   start: float, end: float) -> dict[str, Any]:
    """Frame rate, freezes (WebRTC's rule), height and bitrate within [start, end)."""
    times = [t for t, _ in frames if start <= t < end]
    heights = [h for t, h in frames if start <= t < end]
    seconds = end - start
    frozen = 0.0
    intervals: list[float] = []
    previous = start
    for arrival in times + [end]:
        gap = arrival - previous
        if intervals:
            mean = statistics.fmean(intervals[-30:])
            if gap > max(3 * mean, mean + 0.150):
                frozen += gap
        elif gap > 0.5:  # nothing decoded since the window opened
            frozen += gap
        intervals.append(gap)
        previous = arrival
    received = sum(size for t, size in video_bytes if start <= t < end)
    return {
        "fps": len(times) / seconds,
        "frozen_s": frozen,
        "frozen_pct": 100 * frozen / seconds,
        "height": statistics.median(heights) if heights else 0,
        "kbit_s": received * 8 / seconds / 1000,
    }


def viewer_process(url: str, conn: Any) -> None:
    asyncio.run(_view(url, conn))


async def _view(url: str, conn: Any) -> None:
    loop = asyncio.get_running_loop()
    viewer = DecodingViewer()
    try:
        await viewer.join(url)
        conn.send(("joined",))
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command[0] == "measure":
                _, start, end = command
                received_before, lost_before = await viewer.lost_after_repair()
                await asyncio.sleep(max(0.0, end - time.monotonic()) + 0.2)
                received, lost = await viewer.lost_after_repair()
                figures = window_figures(viewer.frames, viewer.video_bytes, start, end)
                got, missing = received - received_before, lost - lost_before
                figures["loss_pct"] = 100 * missing / max(1, got + missing)
                conn.send(("measured", figures))
            elif command[0] == "next_frame_after":
                _, since, timeout = command
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    later = [t for t, _ in viewer.frames if t > since]
                    if later:
                        conn.send(("frame", later[0] - since))
                        break
                    await asyncio.sleep(0.01)
                else:
                    conn.send(("frame", None))
            else:
                break
    except Exception as exc:
        conn.send(("failed", repr(exc)))
    finally:
        await viewer.close()


def _viewer_entry(namespace: str, url: str, conn: Any) -> None:
    """Run one viewer inside its namespace (a forked child enters it before any socket)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/var/run/netns/{namespace}") as handle:
        if libc.setns(handle.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns failed")
    viewer_process(url, conn)


# --- orchestration -----------------------------------------------------------------------


def _spawn(target: Any, *args: Any) -> tuple[multiprocessing.Process, Any]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.Process(target=target, args=(*args, theirs), daemon=True)
    process.start()
    return process, ours


def _spawn_viewer(namespace: str, url: str) -> tuple[multiprocessing.Process, Any]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_viewer_entry, args=(namespace, url, theirs), daemon=True)
    process.start()
    return process, ours


def run(args: argparse.Namespace, media: Path) -> dict[str, Any]:
    networks = ViewerNetworks()
    children: list[tuple[multiprocessing.Process, Any]] = []
    try:
        server, server_conn = _spawn(server_process)
        children.append((server, server_conn))
        _, port, _ = server_conn.recv()
        publisher, publisher_conn = _spawn(publisher_process, f"http://127.0.0.1:{port}", str(media))
        children.append((publisher, publisher_conn))
        publisher_conn.recv()
        viewers = []
        for index, link in enumerate(LINKS, start=1):
            namespace, relay_ip = networks.add(index, link)
            process, conn = _spawn_viewer(namespace, f"http://{relay_ip}:{port}")
            children.append((process, conn))
            viewers.append((link, conn))
        for link, conn in viewers:
            reply = conn.recv()
            if reply[0] != "joined":
                raise RuntimeError(f"viewer {link.name}: {reply}")
        time.sleep(args.settle)
        start = time.monotonic()
        end = start + args.seconds
        for _, conn in viewers:
            conn.send(("measure", start, end))
        rows = []
        for link, conn in viewers:
            reply = conn.recv()
            if reply[0] != "measured":
                raise RuntimeError(f"viewer {link.name}: {reply}")
            rows.append({"viewer": link.name, **reply[1]})
        result: dict[str, Any] = {"rows": rows}
        if args.resume:
            publisher_conn.send("stop")
            publisher.join(10)
            time.sleep(2.0)  # the host is away
            publisher, publisher_conn = _spawn(publisher_process, f"http://127.0.0.1:{port}", str(media))
            children.append((publisher, publisher_conn))
            publisher_conn.recv()
            answered = time.monotonic()
            waits = []
            for link, conn in viewers:
                conn.send(("next_frame_after", answered, 10.0))
            for link, conn in viewers:
                waits.append((link.name, conn.recv()[1]))
            result["resume"] = waits
        return result
    finally:
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


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"{'viewer':<12} {'fps':>5} {'pub fps':>7} {'frozen s':>8} {'frozen %':>8} {'height':>6} "
          f"{'kbit/s':>7} {'loss after repair':>17}")
    for row in rows:
        print(f"{row['viewer']:<12} {row['fps']:5.1f} {PUBLISHER_FPS:7d} {row['frozen_s']:8.2f} "
              f"{row['frozen_pct']:8.1f} {row['height']:6.0f} {row['kbit_s']:7.0f} {row['loss_pct']:16.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after joining before measuring")
    parser.add_argument("--resume", action="store_true", help="also measure a publisher's return")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/networks.py needs root (network namespaces, tc, nft)")
    ensure_loopback_namespace()
    multiprocessing.set_start_method("fork")
    with tempfile.TemporaryDirectory() as scratch:
        media = Path(scratch) / "media.pickle"
        print("encoding the publisher's media once:", flush=True)
        encode_media(media)
        result = run(args, media)
    print_rows("single-layer relay (baseline: every viewer gets the publisher's one bitrate)", result["rows"])
    for name, wait in result.get("resume", []):
        shown = f"{wait * 1000:.0f} ms" if wait is not None else "no frame in 10 s"
        print(f"publisher back -> next decoded frame, {name}: {shown}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
