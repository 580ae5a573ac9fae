"""Real rooms for the tests: the whole app on a free port (demo data, real SQLite or
PostgreSQL, optionally the test run's redis-server) and real python-socketio clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from orders.db import Database
from tests.conftest import free_port, missing_service, test_settings

PASSWORD = "livemall-demo"
HOST = "host@livemall.example"
MEMBER = "member@livemall.example"
BUYER = "buyer@livemall.example"
ADMIN = "admin@livemall.example"
SHOW = 1  # the demo show


class Viewer:
    """A python-socketio client that records every event, unpacking `batch` packets."""

    def __init__(self, url: str, name: str = "", **client_options: Any) -> None:
        self.url = url
        self.name = name
        client_options.setdefault("reconnection", False)
        self.client = socketio.AsyncClient(**client_options)
        self.events: list[tuple[str, Any]] = []
        self.packets = 0  # Socket.IO event packets received (a batch is one)
        self.refused: Any = None
        self._changed = asyncio.Event()
        self.client.on("*", self._on_event)
        self.client.on("connect_error", self._on_refused)

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.packets += 1
        if event == "batch":
            self.events.extend((e, d) for e, d in data)
        else:
            self.events.append((event, data))
        self._changed.set()

    async def _on_refused(self, data: Any = None) -> None:
        self.refused = data
        self._changed.set()

    async def connect(self, auth: dict | Callable[[], dict] | None, *, wait_state: bool = True, **kwargs) -> "Viewer":
        kwargs.setdefault("transports", ["websocket"])
        await self.client.connect(self.url, auth=auth, wait_timeout=10, **kwargs)
        if wait_state:
            await self.next("state")
        return self

    async def refusal(self, auth: Any, **kwargs) -> dict:
        """Connect expecting a refusal; returns the connect_error data."""
        kwargs.setdefault("transports", ["websocket"])
        with pytest.raises(socketio.exceptions.ConnectionError):
            await self.client.connect(self.url, auth=auth, wait_timeout=10, **kwargs)
        return self.refused

    async def call(self, event: str, data: Any = None) -> dict:
        return await self.client.call(event, data, timeout=10)

    def seen(self, event: str) -> list[Any]:
        return [d for e, d in self.events if e == event]

    async def next(self, event: str, where: Callable[[Any], bool] = lambda d: True, timeout: float = 10) -> Any:
        """The first event of this name matching `where` (already received or coming)."""

        async def wait() -> Any:
            start = 0
            while True:
                for e, d in self.events[start:]:
                    if e == event and where(d):
                        return d
                start = len(self.events)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        # Bounded: a disconnect to a server that was killed (or is overloaded) must not
        # hold the test's teardown until pytest's timeout.
        if self.client.connected:
            try:
                await asyncio.wait_for(self.client.disconnect(), 5)
            except asyncio.TimeoutError:
                pass


@dataclass
class Server:
    """One running app; `viewer()` makes clients that are closed after the test."""

    url: str
    app: web.Application
    runner: web.AppRunner
    database: str
    viewers: list[Viewer] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    async def token(self, email: str) -> str:
        if email not in self.tokens:
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{self.url}/api/auth/login", json={"email": email, "password": PASSWORD}) as r:
                    assert r.status == 200, await r.text()
                    self.tokens[email] = (await r.json())["token"]
        return self.tokens[email]

    def viewer(self, name: str = "", **client_options: Any) -> Viewer:
        viewer = Viewer(self.url, name, **client_options)
        self.viewers.append(viewer)
        return viewer

    async def join(self, email: str | None = None, *, show: int = SHOW, **auth: Any) -> Viewer:
        """A client in the show, signed in as `email` (None: anonymous), with its state."""
        if email is not None:
            auth["token"] = await self.token(email)
        return await self.viewer(email or "anonymous").connect({"show": show, **auth})

    async def close(self) -> None:
        for viewer in self.viewers:
            await viewer.close()
        await self.runner.cleanup()


async def start_server(database: str, tmp_path: Path, **overrides: Any) -> Server:
    from web.app import create_app

    app = create_app(test_settings(database, recordings_dir=tmp_path / "recordings", **overrides))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Server(f"http://127.0.0.1:{port}", app, runner, database)


async def load_demo_into(url: str) -> None:
    from orders.demo import load_demo

    database = Database(url)
    async with database.transaction() as session:
        await load_demo(session)
    await database.close()


@pytest.fixture
async def start(demo_db: str, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """start(**settings) -> a Server on the demo SQLite database (several may share it)."""
    servers: list[Server] = []

    async def _start(database: str | None = None, **overrides: Any) -> Server:
        server = await start_server(database or demo_db, tmp_path, **overrides)
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.close()


@pytest.fixture
async def server(start) -> Server:
    return await start()


async def query(server: Server, sql: str, **params: Any) -> list[tuple]:
    """Read the server's database directly (what reports and orders would see)."""
    from sqlalchemy import text

    database = Database(server.database)
    try:
        async with database.session() as session:
            return [tuple(row) for row in (await session.execute(text(sql), params)).all()]
    finally:
        await database.close()


# --- real `livemall serve` processes and a redis-server that can be restarted ---------

ROOT = Path(__file__).resolve().parents[2]


class Node:
    """One `livemall serve` process."""

    def __init__(self, port: int, proc: subprocess.Popen, log: Path) -> None:
        self.port, self.proc, self.log = port, proc, log
        self.url = f"http://127.0.0.1:{port}"


def spawn_node(name: str, database: str, redis_url: str, tmp: Path, **env_settings: str) -> Node:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMALL_")}
    env.update(
        PYTHONPATH=str(ROOT),
        LIVEMALL_SECRET="two-process-secret",
        LIVEMALL_NODE_NAME=name,
        LIVEMALL_PRESENCE_TIMEOUT="3",
        LIVEMALL_AUTO_MIGRATE="false",
        LIVEMALL_RECORDINGS_DIR=str(tmp / f"rec-{name}"),
        **{f"LIVEMALL_{k.upper()}": v for k, v in env_settings.items()},
    )
    log = tmp / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(port), "--database", database, "--redis", redis_url],
        env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    return Node(port, proc, log)


def wait_healthy(node: Node, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise AssertionError(f"node exited: {node.log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(node.url + "/healthz", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"node did not answer: {node.log.read_text()[-3000:]}")


@asynccontextmanager
async def serve_nodes(database: str, redis_url: str, tmp: Path, **env_settings: str) -> AsyncIterator[tuple]:
    """Two real processes n1 and n2 on one database and Redis: (server1, server2, node1, node2)."""
    nodes = [spawn_node(name, database, redis_url, tmp, **env_settings) for name in ("n1", "n2")]
    servers = [Server(node.url, None, None, database) for node in nodes]
    try:
        for node in nodes:
            await asyncio.to_thread(wait_healthy, node)
        yield servers[0], servers[1], nodes[0], nodes[1]
    finally:
        for server in servers:
            for viewer in server.viewers:
                await viewer.close()
        for node in nodes:
            if node.proc.poll() is None:
                node.proc.terminate()
                try:
                    node.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()


class RedisServer:
    """A redis-server of one test's own, on a fixed free port, that can be stopped and
    started again (an empty Redis on the same address, as after a restart)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing_service("redis-server is not installed")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        """Gone at once, as in a crash: every client connection drops."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
