"""Chat fan-out benchmark: livemall's rooms against a bare python-socketio server.

    /work/venv/bin/python bench/chat.py                  # 1,000 clients, ≈ 3 minutes
    /work/venv/bin/python bench/chat.py --clients 2000   # another crowd size
    /work/venv/bin/python bench/chat.py --quick          # 500 clients, bare and one process, < 1 minute
    /work/venv/bin/python bench/chat.py --only livemall,livemall2 --cpu-quota 0.15   # a capped core each

For each server it connects N receiving clients and 20 senders to one show, then
raises the offered load step by step (each sender sends R messages a second, R
doubling) and measures, per step: chat messages delivered per second (summed over all
receivers), send-to-receive latency (p50/p95/p99) and the server's CPU (user+system
seconds per wall second, from /proc). A server "sustains" a step when it delivers at
least 95 % of what was offered in the step and its p99 stays under 1 s; the headline
is each server's best sustained step, and the ratio of deliveries per second to the
bare server's. The servers run one after the other, each step starting once every
server process is idle, so a saturated server's backlog never lands on another's step.

Servers:
  bare        a plain python-socketio AsyncServer (aiohttp) whose `chat` handler does
              `await sio.emit("chat", payload, room="show")` and acks: no database, no
              auth, no limits (python-socketio's own fan-out, nothing else).
  livemall    `livemall serve` (SQLite, auth, validation, storage, limits on but the
              per-user rate limit raised so 20 senders can push the load).
  livemall×2  two `livemall serve` processes with Redis, clients split between them.

The load generator is built to cost little per delivery so the servers, not the
clients, are measured on a small machine: receivers are raw WebSocket connections that
speak just enough Engine.IO/Socket.IO to join (handshake, CONNECT with auth, PONG)
and count chat events by scanning the byte stream for the marker `["chat",` (present
once per chat event in a plain packet and in a batch alike). A subset of "probe"
receivers are ordinary aiohttp WebSocket clients that decode every frame and read each
message's send time (in its text) to measure latency. Senders are raw connections too.
The load generator's own CPU is printed beside the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import load_average, machine_busy, percentile, process_cpu  # noqa: E402

MARKER = b'["chat",'
PING_FRAME = b"\x81\x012"  # server text frame "2" (Engine.IO ping)
PONG_FRAME = b"\x81\x81\x00\x00\x00\x003"  # masked client text frame "3", zero mask
SECRET = "bench-secret"
SHOW = 1
TEXT_RE = re.compile(r'"text":"bench \d+ \d+ (\d+)')


def client_frame(text: str) -> bytes:
    """A masked client text frame (zero mask: XOR with zeros leaves the payload as is)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


cpu_seconds = process_cpu  # the name the other benchmarks import


# --- the bare server ---------------------------------------------------------------

def serve_bare(port: int) -> None:
    import socketio
    from aiohttp import web
    from datetime import datetime, timezone

    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=64 * 1024)
    app = web.Application()
    sio.attach(app)
    counter = {"n": 0}

    @sio.event
    async def connect(sid, environ, auth=None):
        await sio.enter_room(sid, "show")

    @sio.on("chat")
    async def chat(sid, data):
        counter["n"] += 1
        payload = {"id": counter["n"], "room": "show", "user": {"id": 1, "name": "bench", "role": "buyer"},
                   "text": data["text"], "at": datetime.now(timezone.utc).isoformat()}
        await sio.emit("chat", payload, room="show")
        return {"ok": True, "id": counter["n"]}

    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- raw clients ---------------------------------------------------------------------

async def ws_open(
    port: int, auth: dict, *, address: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Open an Engine.IO WebSocket and send the Socket.IO CONNECT; returns the raw stream
    and what arrived after the CONNECT ack. ``address``: sent as X-Forwarded-For (the
    server trusts loopback proxies), so one machine can stand for many clients."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        forwarded = f"X-Forwarded-For: {address}\r\n" if address else ""
        writer.write(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{forwarded}"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        # The Engine.IO OPEN packet: one text frame with a JSON body shorter than 126 bytes... or not.
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await reader.readexactly(2), "big")
        await reader.readexactly(n)
        writer.write(client_frame("40" + json.dumps(auth)))
        # Wait for Socket.IO's CONNECT ack ("40{...}") or refusal ("44{...}").
        seen = b""
        while b"40{" not in seen:
            data = await reader.read(1 << 16)
            if not data or b"44{" in data:
                raise ConnectionError(f"Socket.IO connect refused: {(seen + data)[:200]!r}")
            seen = (seen + data)[-8192:]
        return reader, writer, seen[seen.index(b"40{"):]
    except BaseException:
        writer.close()
        raise


class Counter:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


async def raw_receiver(port: int, auth: dict, counter: Counter, ready: asyncio.Event, stop: asyncio.Event) -> None:
    reader, writer, _ = await ws_open(port, auth)
    ready.set()
    carry = b""
    marker_tail = len(MARKER) - 1
    try:
        while not stop.is_set():
            data = await reader.read(1 << 18)
            if not data:
                return
            chunk = carry + data
            counter.count += chunk.count(MARKER)
            pings = chunk.count(PING_FRAME)
            if pings:
                writer.write(PONG_FRAME * pings)
            carry = chunk[-marker_tail:]
    finally:
        writer.close()


async def probe_receiver(port: int, auth: dict, counter: Counter, latencies: list, ready: asyncio.Event,
                         stop: asyncio.Event) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
                                   max_msg_size=0, autoping=False) as ws:
            await ws.receive()  # OPEN
            await ws.send_str("40" + json.dumps(auth))
            while not (await ws.receive()).data.startswith("40"):
                pass
            ready.set()
            while not stop.is_set():
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                text = msg.data
                if text == "2":
                    await ws.send_str("3")
                    continue
                now = time.time_ns()
                counter.count += text.count('["chat",')
                for sent in TEXT_RE.findall(text):
                    latencies.append((now - int(sent)) / 1e6)


@dataclass
class Group:
    """The receivers one server gets from one load process."""

    name: str
    ports: list[int]
    auths: list[dict]
    first: int  # index of this process's first receiver among all of the group's
    count: int
    probes: int


def worker_main(conn, groups: list[Group]) -> None:
    """A load process: receivers for every server (the first `probes` of a group time messages)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        counters = {g.name: [Counter() for _ in range(g.count)] for g in groups}
        latencies: dict[str, list[float]] = {g.name: [] for g in groups}
        tasks: dict[str, list[asyncio.Task]] = {g.name: [] for g in groups}
        stop = asyncio.Event()
        gate = asyncio.Semaphore(50)

        async def start(g: Group, i: int) -> None:
            ready = asyncio.Event()
            port = g.ports[(g.first + i) % len(g.ports)]
            auth = g.auths[(g.first + i) % len(g.auths)]
            async with gate:
                if i < g.probes:
                    work = probe_receiver(port, auth, counters[g.name][i], latencies[g.name], ready, stop)
                else:
                    work = raw_receiver(port, auth, counters[g.name][i], ready, stop)
                task = asyncio.create_task(work)
                tasks[g.name].append(task)
                done, _ = await asyncio.wait([task, asyncio.create_task(ready.wait())], timeout=60,
                                             return_when=asyncio.FIRST_COMPLETED)
                if task in done:
                    task.result()  # raises why it could not connect

        for g in groups:
            await asyncio.gather(*(start(g, i) for i in range(g.count)))
        conn.send(("ready", None))
        started_cpu = time.process_time()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "snapshot":
                report = {
                    name: (sum(c.count for c in counters[name]), latencies[name][:],
                           sum(1 for t in tasks[name] if not t.done()))
                    for name in counters
                }
                for values in latencies.values():
                    values.clear()
                conn.send(("snapshot", (report, time.process_time() - started_cpu)))
            elif command == "stop":
                stop.set()
                for group in tasks.values():
                    for t in group:
                        t.cancel()
                conn.send(("stopped", None))
                return

    asyncio.run(main())


@dataclass
class Sender:
    port: int
    auth: dict
    index: int
    ok: int = 0
    refused: int = 0
    sent: int = 0
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task | None = None

    async def open(self) -> None:
        reader, self.writer, _ = await ws_open(self.port, self.auth)
        self.task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        carry = b""
        while True:
            data = await reader.read(1 << 18)
            if not data:
                return
            chunk = carry + data
            self.ok += chunk.count(b'"ok":true')
            self.refused += chunk.count(b'"ok":false')
            if chunk.count(PING_FRAME):
                self.writer.write(PONG_FRAME * chunk.count(PING_FRAME))
            carry = chunk[-10:]

    def send(self, seq: int) -> None:
        text = f"bench {self.index} {seq} {time.time_ns()} — 오늘의 특가 상품 보러 왔어요"
        self.writer.write(client_frame(f'42{seq}["chat",{{"text":"{text}"}}]'))
        self.sent += 1

    def close(self) -> None:
        if self.task:
            self.task.cancel()
        if self.writer:
            self.writer.close()


# --- servers -------------------------------------------------------------------------

@dataclass
class Servers:
    name: str
    ports: list[int]
    procs: list[subprocess.Popen]
    sender_auths: list[dict]
    receiver_auths: list[dict]
    extra: list[subprocess.Popen] = field(default_factory=list)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for p in self.procs + self.extra:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs + self.extra:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def wait_http(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not answer {url}:\n{log.read_text()[-3000:]}")


def start_bare(tmp: Path) -> Servers:
    port = free_port()
    log = tmp / "bare.log"
    proc = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port)], stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling", proc, log)
    auth = {"show": SHOW}
    return Servers("bare python-socketio", [port], [proc], [auth], [auth])


async def prepare_database(url: str, senders: int) -> list[dict]:
    """Migrated demo database plus one buyer account per sender; returns their auths."""
    from orders.accounts import hash_password
    from orders.db import Database
    from orders.demo import load_demo
    from orders.models import Role, User, utcnow
    from orders.sessions import open_session
    from web.auth import TokenCodec
    from web.migrate import upgrade

    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    codec = TokenCodec(SECRET, 24 * 3600)
    password_hash = hash_password("bench-password")
    auths = []
    async with db.transaction() as session:
        await load_demo(session)
        for i in range(senders):
            user = User(email=f"sender{i}@bench.example", password_hash=password_hash, name=f"보내는 사람 {i}",
                        role=Role.buyer, country="KR")
            session.add(user)
            await session.flush()
            opened = await open_session(session, user.id, utcnow(), timedelta(seconds=codec.ttl))
            auths.append({"show": SHOW, "token": codec.issue(user.id, session_id=opened.id)})
    await db.close()
    return auths


PG_SOCKET = "/var/run/postgresql"


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(database="postgres", host=PG_SOCKET, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def database_for(kind: str, tmp: Path, name: str) -> tuple[str, str | None]:
    """(SQLAlchemy URL, PostgreSQL database to drop afterwards) for one run."""
    if kind in ("auto", "postgresql"):
        dbname = f"livemall_bench_{name}_{os.getpid()}"
        try:
            await pg_admin(f"DROP DATABASE IF EXISTS {dbname}")
            await pg_admin(f"CREATE DATABASE {dbname}")
            return f"postgresql+asyncpg:///{dbname}?host={PG_SOCKET}", dbname
        except Exception as exc:  # noqa: BLE001
            if kind == "postgresql":
                raise SystemExit(f"PostgreSQL is not reachable at {PG_SOCKET}: {exc}")
    return f"sqlite+aiosqlite:///{tmp / (name + '.db')}", None


def start_livemall(tmp: Path, processes: int, database: str, sender_auths: list[dict], redis_url: str | None,
                   window: float) -> Servers:
    procs, ports, logs = [], [], []
    for i in range(processes):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMALL_")}
        env.update(PYTHONPATH=str(ROOT), LIVEMALL_SECRET=SECRET, LIVEMALL_AUTO_MIGRATE="false",
                   LIVEMALL_NODE_NAME=f"n{i + 1}", LIVEMALL_CHAT_RATE_COUNT="1000000",
                   # Every client comes from 127.0.0.1: one address's socket cap would refuse them.
                   LIVEMALL_SOCKETS_PER_ADDRESS="1000000",
                   LIVEMALL_ROOM_BATCH_WINDOW=str(window), LIVEMALL_DRAIN_SETTLE="0",
                   LIVEMALL_RECORDINGS_DIR=str(tmp / "recordings"))
        args = [sys.executable, "-m", "web.cli", "serve", "--port", str(port), "--database", database]
        if os.environ.get("BENCH_PROFILE"):  # a directory: profile each livemall process with cProfile
            args[1:1] = ["-m", "cProfile", "-o", f"{os.environ['BENCH_PROFILE']}/livemall-{processes}-{i}.prof"]
        if redis_url:
            args += ["--redis", redis_url]
        log = tmp / f"livemall-{processes}-{i}.log"
        procs.append(subprocess.Popen(args, env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT))
        ports.append(port)
        logs.append(log)
    for port, proc, log in zip(ports, procs, logs):
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
    kind = "PostgreSQL" if database.startswith("postgresql") else "SQLite"
    name = f"livemall, {kind}" if processes == 1 else f"livemall ×{processes} + Redis, {kind}"
    return Servers(name, ports, procs, sender_auths, [{"show": SHOW}])


def start_redis(tmp: Path) -> tuple[str, subprocess.Popen]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"redis://127.0.0.1:{port}/0", proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


class CpuQuota:
    """Every server process in a cgroup of its own (cgroup v1 `cpu` controller), capped
    at the same share of a core.

    On a machine with few cores the load generator and two server processes compete for
    the same CPU, so "two processes against one" measures the machine, not the design.
    With a cap per process, each stands for a process on a core of its own: one process
    gets `cores`, two get `cores` each, and the load generator and Redis use the rest.
    """

    ROOT = Path("/sys/fs/cgroup/cpu")
    # A short period: a capped process is throttled in slices of milliseconds, not of a
    # tenth of a second, which would show as latency spikes rather than lower capacity.
    PERIOD_US = 10_000

    def __init__(self, cores: float) -> None:
        if not (self.ROOT / "cgroup.procs").exists():
            raise SystemExit(f"--cpu-quota needs the cgroup v1 cpu controller at {self.ROOT}")
        self.cores = cores
        self.groups: list[Path] = []

    def confine(self, servers: Servers) -> None:
        for proc in servers.procs:
            group = self.ROOT / f"livemall-bench-{os.getpid()}-{proc.pid}"
            group.mkdir()
            (group / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(int(self.cores * self.PERIOD_US)))
            (group / "cgroup.procs").write_text(str(proc.pid))
            self.groups.append(group)

    def close(self) -> None:
        """Remove the groups (their processes have exited by now)."""
        for group in self.groups:
            try:
                group.rmdir()
            except OSError as exc:
                print(f"cgroup {group} not removed: {exc}", file=sys.stderr)
        self.groups.clear()


# --- one run -------------------------------------------------------------------------

@dataclass
class Step:
    rate: float  # messages a second per sender
    offered: float  # deliveries a second asked for
    delivered: float
    p50: float
    p95: float
    p99: float
    server_cpu: float  # cores
    load_cpu: float  # cores used by the load generator (receivers and senders)
    machine_cpu: float  # cores busy on the whole machine, other tenants included
    refused: int
    lost_clients: int

    @property
    def sustained(self) -> bool:
        return self.delivered >= 0.95 * self.offered and self.p99 < 1000 and self.lost_clients == 0


class Load:
    """The load-generator processes, shared by every server of one size."""

    def __init__(self, servers: list[Servers], clients: int, workers: int, probes: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes, self.procs = [], []
        per = [clients // workers + (1 if i < clients % workers else 0) for i in range(workers)]
        first = 0
        for i, count in enumerate(per):
            groups = [Group(sv.name, sv.ports, sv.receiver_auths, first, count, probes if i == 0 else 0)
                      for sv in servers]
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(child, groups), daemon=True)
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)
            first += count

    async def ask(self, command: str) -> list:
        loop = asyncio.get_running_loop()
        for pipe in self.pipes:
            pipe.send(command)
        replies = [await loop.run_in_executor(None, pipe.recv) for pipe in self.pipes]
        return [payload for _, payload in replies]

    async def ready(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, pipe.recv) for pipe in self.pipes))

    async def snapshot(self, name: str) -> tuple[int, list[float], int, float]:
        """(deliveries so far, latencies since the last snapshot, receivers alive, load CPU seconds)."""
        replies = await self.ask("snapshot")
        count = sum(r[0][name][0] for r in replies)
        latencies = [x for r in replies for x in r[0][name][1]]
        alive = sum(r[0][name][2] for r in replies)
        cpu = sum(r[1] for r in replies)
        return count, latencies, alive, cpu

    async def stop(self) -> None:
        await self.ask("stop")
        for p in self.procs:
            p.join(timeout=10)


async def send_at(sending: list[Sender], rate: float, seq: list[int], stop: asyncio.Event) -> None:
    """Each sender sends `rate` messages a second, the senders evenly staggered."""
    senders = len(sending)
    interval = 1 / rate
    t0 = time.monotonic()
    next_at = [t0 + (i / senders) * interval for i in range(senders)]
    while not stop.is_set():
        now = time.monotonic()
        soonest = min(next_at)
        if soonest > now:
            await asyncio.sleep(soonest - now)
            continue
        for i, s in enumerate(sending):
            while next_at[i] <= now:
                seq[0] += 1
                s.send(seq[0])
                next_at[i] += interval


async def run_step(servers: Servers, sending: list[Sender], load: Load, clients: int, rate: float,
                   duration: float, seq: list[int], idle_pids: list[int]) -> Step:
    """Send for `duration` seconds; measure the steady state, after a warm-up of a quarter
    of the step (at most 1 s) in which the first messages are still on their way."""
    senders = len(sending)
    await settle(idle_pids)
    stop = asyncio.Event()
    refused_before = sum(s.refused for s in sending)
    sender_task = asyncio.create_task(send_at(sending, rate, seq, stop))
    warm = min(1.0, duration / 4)
    await asyncio.sleep(warm)
    before, _, _, before_load = await load.snapshot(servers.name)  # also drops the warm-up's latencies
    t0 = time.monotonic()
    before_load += time.process_time()
    before_cpu = sum(cpu_seconds(pid) for pid in servers.pids())
    before_machine = machine_busy()
    await asyncio.sleep(duration - warm)
    after, latencies, _, after_load = await load.snapshot(servers.name)
    window = time.monotonic() - t0
    cpu = (sum(cpu_seconds(pid) for pid in servers.pids()) - before_cpu) / window
    machine = (machine_busy()[0] - before_machine[0]) / window
    load_cpu = (after_load + time.process_time() - before_load) / window
    stop.set()
    await sender_task
    await asyncio.sleep(1.5)  # stragglers still count for latency
    _, late, alive, _ = await load.snapshot(servers.name)
    offered = rate * senders * clients
    times = latencies + late
    step = Step(rate, offered, (after - before) / window, percentile(times, 0.5), percentile(times, 0.95),
                percentile(times, 0.99), cpu, load_cpu, machine,
                sum(s.refused for s in sending) - refused_before, clients - alive)
    print(f"  {servers.name:<34} {rate:>5g}/s/sender  offered {offered:>9,.0f}/s  delivered "
          f"{step.delivered:>9,.0f}/s  p50 {step.p50:>7.1f} p95 {step.p95:>7.1f} p99 {step.p99:>7.1f} ms  CPU server "
          f"{cpu:4.2f} load {load_cpu:4.2f} machine {machine:4.2f}  lost {step.lost_clients}  "
          f"refused {step.refused}", flush=True)
    return step


async def run_size(all_servers: list[Servers], clients: int, senders: int, rates: list[float], duration: float,
                   workers: int, probes: int, repeats: int) -> dict[str, list[Step]]:
    """Each server in turn climbs the same rate steps until two in a row are not sustained
    (one alone may be a neighbour's burst on a shared machine). Every step starts once all
    server processes are idle."""
    load = Load(all_servers, clients, workers, probes)
    await load.ready()
    sending = {}
    for sv in all_servers:
        sending[sv.name] = [Sender(sv.ports[i % len(sv.ports)], sv.sender_auths[i % len(sv.sender_auths)], i)
                            for i in range(senders)]
        await asyncio.gather(*(s.open() for s in sending[sv.name]))
    every_pid = [pid for sv in all_servers for pid in sv.pids()]
    results: dict[str, list[Step]] = {sv.name: [] for sv in all_servers}
    seq = [0]
    for repeat in range(repeats):
        if repeats > 1:
            print(f" round {repeat + 1} of {repeats}", flush=True)
        for sv in all_servers:
            failed = 0
            for rate in rates:
                step = await run_step(sv, sending[sv.name], load, clients, rate, duration, seq, every_pid)
                results[sv.name].append(step)
                failed = 0 if step.sustained else failed + 1
                if failed == 2:
                    break  # two steps in a row not sustained: past this server's capacity
    for group in sending.values():
        for s in group:
            s.close()
    await load.stop()
    return results


async def settle(pids: list[int], seconds: float = 30) -> None:
    """Wait until the servers are idle: joining sockets get their state, counts settle."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(p) for p in pids)
        await asyncio.sleep(0.5)
        if (sum(cpu_seconds(p) for p in pids) - before) / 0.5 < 0.1:
            return


def best(steps: list[Step]) -> Step | None:
    ok = [s for s in steps if s.sustained]
    return max(ok, key=lambda s: s.delivered) if ok else None


def best_effort(steps: list[Step]) -> Step:
    return max(steps, key=lambda s: s.delivered)


async def bench(args: argparse.Namespace) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    sizes = [args.clients]

    def rates_for(clients: int) -> list[float]:
        return [float(r) for r in args.rates.split(",")]

    configs = args.only.split(",")
    began = time.monotonic()
    print(f"chat fan-out: {args.senders} senders, {args.duration:g} s per step, {args.workers} load processes, "
          f"{os.cpu_count()} CPUs shared; /proc/loadavg at start {load_average()}", flush=True)
    quota = CpuQuota(args.cpu_quota) if args.cpu_quota else None
    if quota:
        print(f"every server process capped at {args.cpu_quota:g} of a core (its own cgroup)", flush=True)
    results: dict[int, dict[str, list[Step]]] = {}
    with tempfile.TemporaryDirectory(prefix="livemall-bench-") as tmpdir:
        tmp = Path(tmpdir)
        redis_url, redis_proc = start_redis(tmp)
        try:
            for clients in sizes:
                print(f"\n{clients:,} clients in one show", flush=True)
                started: list[Servers] = []
                dropped: list[str] = []
                try:
                    for config in configs:
                        if config == "bare":
                            started.append(start_bare(tmp))
                            if quota:
                                quota.confine(started[-1])
                            continue
                        url, drop = await database_for(args.database, tmp, f"{config}_{clients}")
                        if drop:
                            dropped.append(drop)
                        auths = await prepare_database(url, args.senders)
                        processes = 2 if config == "livemall2" else 1
                        started.append(start_livemall(tmp, processes, url, auths,
                                                      redis_url if processes > 1 else None, args.window))
                        if quota:
                            quota.confine(started[-1])
                    results[clients] = await run_size(started, clients, args.senders, rates_for(clients), args.duration,
                                                      args.workers, args.probes, args.repeats)
                finally:
                    for servers in started:
                        servers.stop()
                    if quota:
                        quota.close()
                    for name in dropped:
                        await pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            redis_proc.terminate()
            redis_proc.wait()
    print_table(results, args.senders)
    print(f"\nwall {time.monotonic() - began:.0f} s; /proc/loadavg at end {load_average()}")


def print_table(results: dict[int, dict[str, list[Step]]], senders: int) -> None:
    print("\nBest sustained step per server (≥95 % of offered deliveries, p99 < 1 s, no client lost):\n")
    print("| clients | server | msg/s sent | deliveries/s | p50 ms | p95 ms | p99 ms | server CPU | machine CPU |"
          " deliveries/s vs bare |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for clients, by_server in results.items():
        bare = one = None
        for name, steps in by_server.items():
            step = best(steps)
            label = ""
            if step is None:
                step, label = best_effort(steps), " (none sustained; best effort)"
            if name.startswith("bare"):
                bare = step
            elif "×" not in name:
                one = step
            ratio = "" if bare is None or name.startswith("bare") else f"{step.delivered / bare.delivered:.1f}×"
            if "×" in name and one is not None:
                ratio += f" ({step.delivered / one.delivered:.2f}× one process)"
            print(f"| {clients:,} | {name}{label} | {step.rate * senders:,g} | {step.delivered:,.0f} | "
                  f"{step.p50:.1f} | {step.p95:.1f} | {step.p99:.1f} | {step.server_cpu:.2f} | "
                  f"{step.machine_cpu:.2f} | {ratio or '1.0×'} |")
        # Equal load: the others at the bare server's best sustained rate.
        if bare is None:
            continue
        print(f"\nAt the bare server's best sustained load ({bare.rate * senders:,g} msg/s in, "
              f"{bare.offered:,.0f} deliveries/s asked), {clients:,} clients:\n")
        print("| server | deliveries/s | p50 ms | p95 ms | p99 ms | server CPU | CPU ms per 1,000 deliveries | "
              "p99 vs bare | CPU vs bare |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, steps in by_server.items():
            same = next((s for s in steps if s.rate == bare.rate), None)
            if same is None:
                continue
            per_k = 1000 * same.server_cpu / same.delivered * 1000 if same.delivered else float("nan")
            bare_k = 1000 * bare.server_cpu / bare.delivered * 1000 if bare.delivered else float("nan")
            print(f"| {name} | {same.delivered:,.0f} | {same.p50:.1f} | {same.p95:.1f} | {same.p99:.1f} | "
                  f"{same.server_cpu:.2f} | {per_k:.2f} | {same.p99 / bare.p99:.2f}× | {per_k / bare_k:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=1000, help="receivers in the show (default 1000)")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--rates", default="0.25,0.5,1,2,4,8,16,32",
                        help="messages a second per sender, step by step (default 0.25,0.5,1,…,32)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per step")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes (receivers)")
    parser.add_argument("--probes", type=int, default=50, help="receivers that decode and time every message")
    parser.add_argument("--window", type=float, default=0.05, help="livemall's room batch window (s)")
    parser.add_argument("--database", choices=["auto", "sqlite", "postgresql"], default="auto",
                        help="livemall's database (auto: PostgreSQL over its unix socket if reachable)")
    parser.add_argument("--only", default="bare,livemall,livemall2",
                        help="comma-separated subset of bare,livemall,livemall2")
    parser.add_argument("--cpu-quota", type=float, default=0.0, metavar="CORES",
                        help="cap every server process at this share of a core (cgroup), so two processes "
                             "can be compared with one on a machine with few cores (e.g. 0.3)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds (each server climbs the steps again)")
    parser.add_argument("--quick", action="store_true",
                        help="500 clients, bare and one livemall process, 2.5-second steps 1,4,16")
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    if args.quick:
        if "--clients" not in sys.argv:
            args.clients = 500
        if "--only" not in sys.argv:
            args.only = "bare,livemall"
        if "--rates" not in sys.argv:
            args.rates = "1,4,16"
        args.duration, args.repeats = 2.5, 1
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
