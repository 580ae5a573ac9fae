"""Abuse benchmark: one client address against one node (issue 14, items 1, 3, 6).

    python bench/abuse.py                   # ≈ 1 minute
    python bench/abuse.py --sockets 3000    # a bigger socket flood
    python bench/abuse.py --tree /tmp/old   # the same against another checkout (e.g. `git archive`)

Starts one `livemall serve` (SQLite, defaults otherwise), then from one address
(203.0.113.7, named in X-Forwarded-For by a loopback peer, which the node trusts as a
proxy) runs, one after the other:

  socket flood    --sockets Socket.IO connections to show 1, --concurrency at a time,
                  kept open
  reaction flood  every flood socket the node accepted sends --reaction-rate reactions
                  a second for --seconds
  WHEP flood      --offers made-up WHEP offers (the show is not live: whatever the node
                  answers is counted)

Beside each, as a normal viewer at another address sees it, measured during the flood:
the time to join the show (WebSocket open to its `state`), `GET /api/shows/1` latency
(p50/p95), the viewers the show counts (`GET /api/shows/1`) and the node's CPU
(seconds per wall second). The first row is the same node with no flood: the baseline.
After the floods the flood sockets close and the count is read again (it should fall
back to the probe's own viewers within the presence timeout).

The load generator reuses bench/chat.py's raw Engine.IO clients, so it costs little
per socket; it and the node share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chat import SECRET, SHOW, client_frame, cpu_seconds, free_port, percentile, wait_http, ws_open  # noqa: E402

FLOODER = "203.0.113.7"
VIEWER = "198.51.100.1"
OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\na=rtpmap:96 VP8/90000\r\n"
)


# --- the node ----------------------------------------------------------------------

def start_node(tree: Path, tmp: Path) -> tuple[subprocess.Popen, int, Path]:
    database = f"sqlite+aiosqlite:///{tmp / 'abuse.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMALL_")}
    env.update(PYTHONPATH=str(tree), LIVEMALL_SECRET=SECRET, LIVEMALL_DATABASE=database,
               LIVEMALL_RECORDINGS_DIR=str(tmp / "recordings"), LIVEMALL_DRAIN_SETTLE="0")
    for command in (["db", "upgrade"], ["demo"]):
        subprocess.run([sys.executable, "-m", "web.cli", *command], env=env, cwd=tree, check=True,
                       stdout=subprocess.DEVNULL)
    port = free_port()
    log = tmp / "node.log"
    proc = subprocess.Popen([sys.executable, "-m", "web.cli", "serve", "--port", str(port)], env=env, cwd=tree,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
    return proc, port, log


async def time_join(port: int) -> float:
    """A normal viewer: seconds from opening the WebSocket to its `state`."""
    start = time.perf_counter()
    reader, writer, seen = await ws_open(port, {"show": SHOW}, address=VIEWER)
    try:
        while b'"state"' not in seen:
            data = await asyncio.wait_for(reader.read(1 << 16), 30)
            if not data:
                raise ConnectionError("closed before state")
            seen = (seen + data)[-65536:]
        return time.perf_counter() - start
    finally:
        writer.close()


async def drain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event,
                counts: dict[str, int] | None = None) -> None:
    """Read and discard; answer pings (bench/chat.py's PONG); count reaction totals seen."""
    pong = b"\x81\x81\x00\x00\x00\x003"
    try:
        while not stop.is_set():
            data = await reader.read(1 << 16)
            if not data:
                return
            if b"\x81\x012" in data:
                writer.write(pong)
            if counts is not None and b'"reactions"' in data:
                for chunk in data.split(b'"counts":')[1:]:
                    try:
                        body = chunk[:chunk.index(b"}") + 1]
                        counts["shown"] += sum(json.loads(body).values())
                    except ValueError:
                        pass
    except (ConnectionError, asyncio.CancelledError):
        return


# --- probes -------------------------------------------------------------------------

@dataclass
class Probe:
    joins: list[float] = field(default_factory=list)
    join_failures: int = 0
    api: list[float] = field(default_factory=list)
    api_failures: int = 0
    viewers: int | None = None


async def probe_while(port: int, stop: asyncio.Event, probe: Probe) -> None:
    import aiohttp

    async def joins() -> None:
        while not stop.is_set():
            try:
                probe.joins.append(await asyncio.wait_for(time_join(port), 30))
            except (ConnectionError, OSError, asyncio.TimeoutError):
                probe.join_failures += 1
            await asyncio.sleep(0.2)

    async def api(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/shows/{SHOW}",
                                    headers={"X-Forwarded-For": VIEWER}) as response:
                    body = await response.json()
                    if response.status == 200:
                        probe.api.append(time.perf_counter() - start)
                        probe.viewers = body.get("viewers")
                    else:
                        probe.api_failures += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):
                probe.api_failures += 1
            await asyncio.sleep(0.05)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(joins(), api(http))


async def show_viewers(port: int) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/api/shows/{SHOW}") as response:
            return (await response.json()).get("viewers")


@dataclass
class Row:
    name: str
    outcome: str
    probe: Probe
    cpu: float

    def cells(self) -> list[str]:
        p = self.probe
        join = f"{percentile(p.joins, 0.5) * 1000:.0f} / {percentile(p.joins, 0.95) * 1000:.0f}" if p.joins else "-"
        api = f"{percentile(p.api, 0.5) * 1000:.0f} / {percentile(p.api, 0.95) * 1000:.0f}" if p.api else "-"
        fails = f"{p.join_failures}/{p.api_failures}"
        return [self.name, self.outcome, join, api, fails, str(p.viewers), f"{self.cpu:.2f}"]


async def measured(name: str, port: int, pid: int, flood, seconds: float | None = None) -> Row:
    """Run `flood()` (returns its outcome text) while probing; or just probe for `seconds`."""
    stop = asyncio.Event()
    probe = Probe()
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    probing = asyncio.create_task(probe_while(port, stop, probe))
    if flood is None:
        await asyncio.sleep(seconds or 5)
        outcome = "-"
    else:
        outcome = await flood()
    stop.set()
    await probing
    cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
    return Row(name, outcome, probe, cpu)


# --- floods -------------------------------------------------------------------------

async def socket_flood(port: int, attempts: int, concurrency: int,
                       held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> str:
    refused = failed = 0
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        nonlocal refused, failed
        async with gate:
            try:
                reader, writer, _ = await asyncio.wait_for(ws_open(port, {"show": SHOW}, address=FLOODER), 30)
                held.append((reader, writer))
            except ConnectionError:
                refused += 1
            except (OSError, asyncio.TimeoutError):
                failed += 1

    await asyncio.gather(*(one() for _ in range(attempts)))
    return f"{attempts} tried: {len(held)} open, {refused} refused, {failed} failed"


async def reaction_flood(port: int, held: list, rate: float, seconds: float) -> str:
    stop = asyncio.Event()
    counts = {"shown": 0}
    watcher_reader, watcher_writer, _ = await ws_open(port, {"show": SHOW}, address=VIEWER)
    watching = asyncio.create_task(drain(watcher_reader, watcher_writer, stop, counts))
    frame = client_frame('42["react",{"kind":"heart"}]')
    sent = 0
    start = time.monotonic()
    tick = 0.1
    while time.monotonic() - start < seconds:
        burst = max(1, round(rate * tick))
        for _, writer in held:
            writer.write(frame * burst)
        sent += burst * len(held)
        await asyncio.sleep(tick)
    await asyncio.sleep(2.5)  # the last totals (sent once a second)
    stop.set()
    watching.cancel()
    watcher_writer.close()
    elapsed = seconds
    return (f"{len(held)} sockets x {rate:.0f}/s: {sent / elapsed:.0f} sent/s, "
            f"{counts['shown'] / elapsed:.0f} shown/s")


async def whep_flood(port: int, offers: int, concurrency: int) -> str:
    import aiohttp

    statuses: dict[int, int] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(http: aiohttp.ClientSession) -> None:
        async with gate:
            try:
                async with http.post(f"http://127.0.0.1:{port}/whep/{SHOW}", data=OFFER,
                                     headers={"Content-Type": "application/sdp", "X-Forwarded-For": FLOODER}) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
            except (aiohttp.ClientError, asyncio.TimeoutError):
                statuses[0] = statuses.get(0, 0) + 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(*(one(http) for _ in range(offers)))
    return f"{offers} offers: " + ", ".join(f"{n}x{s or 'error'}" for s, n in sorted(statuses.items()))


def flood_process(conn, port: int, options: dict) -> None:
    """The flooding client, in a process of its own so its work does not delay the
    probe's clock: runs each flood the parent names and answers with its outcome."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def main() -> None:
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        stop = asyncio.Event()
        draining: list[asyncio.Task] = []
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command == "sockets":
                outcome = await socket_flood(port, options["sockets"], options["concurrency"], held)
                # Keep them open: read what the node sends and answer its pings.
                draining.extend(asyncio.create_task(drain(r, w, stop)) for r, w in held)
            elif command == "reactions":
                outcome = await reaction_flood(port, held, options["reaction_rate"], options["seconds"])
            elif command == "whep":
                outcome = await whep_flood(port, options["offers"], options["concurrency"])
            elif command == "close":
                stop.set()
                for task in draining:
                    task.cancel()
                for _, writer in held:
                    writer.close()
                held.clear()
                outcome = "closed"
            else:
                return
            conn.send(outcome)

    asyncio.run(main())


# --- main ---------------------------------------------------------------------------

def print_table(rows: list[Row], after: int, tree: Path) -> None:
    head = ["scenario", "flood", "viewer join ms p50/p95", "GET /api/shows/1 ms p50/p95",
            "probe failures join/api", "viewers counted", "node CPU"]
    table = [head] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    print(f"\nlivemall abuse benchmark (one node at {tree}, flood from one address {FLOODER}; "
          f"a normal viewer at {VIEWER} probes)\n")
    for i, line in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\nviewers counted after the flood sockets closed (presence timeout later): {after}")
    print("target (issue 14): viewer join and GET p95 under 1 s during every flood; "
          "only people counted (the flood adds at most anonymous_viewers_per_address)")


async def bench(args: argparse.Namespace) -> None:
    tree = Path(args.tree).resolve()
    with tempfile.TemporaryDirectory(prefix="livemall-abuse-") as tmp_name:
        proc, port, log = start_node(tree, Path(tmp_name))
        parent, child = mp.Pipe()
        options = {k: getattr(args, k) for k in ("sockets", "concurrency", "reaction_rate", "offers", "seconds")}
        flooder = mp.Process(target=flood_process, args=(child, port, options), daemon=True)
        flooder.start()

        async def run(command: str) -> str:
            parent.send(command)
            return await asyncio.to_thread(parent.recv)

        try:
            rows = [await measured("no flood (baseline)", port, proc.pid, None, seconds=args.seconds)]
            rows.append(await measured("socket flood", port, proc.pid, lambda: run("sockets")))
            rows.append(await measured("reaction flood", port, proc.pid, lambda: run("reactions")))
            rows.append(await measured("WHEP offer flood", port, proc.pid, lambda: run("whep")))
            await run("close")
            await asyncio.sleep(args.settle)
            after = await show_viewers(port)
            print_table(rows, after, tree)
        finally:
            parent.send("quit")
            flooder.join(timeout=10)
            if flooder.is_alive():
                flooder.kill()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default=str(ROOT), help="the livemall checkout to run (default: this one)")
    parser.add_argument("--sockets", type=int, default=1500, help="socket connections the flood tries")
    parser.add_argument("--concurrency", type=int, default=200, help="flood connections in flight at once")
    parser.add_argument("--reaction-rate", type=float, default=10.0, help="reactions a second per flood socket")
    parser.add_argument("--offers", type=int, default=300, help="WHEP offers in the WHEP flood")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the baseline and the reaction flood")
    parser.add_argument("--settle", type=float, default=12.0, help="seconds to wait before the final count")
    args = parser.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
