"""A real cluster for the deployment tests: `deploy/local-cluster start` with nginx, two
nodes, coturn, a PostgreSQL database of the test's own and the test run's redis-server.

One cluster serves the whole session (starting it is most of the suite's time). Tests
that stop or kill a node bring it back with `Cluster.ensure_running()` when they end;
every other test makes its own show, users and keys so none depends on another's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aiohttp
import pytest

from tests.cluster.clients import HOST, Api
from tests.conftest import free_port, missing_service, pg_exec, pg_url

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local-cluster"


@dataclass
class Cluster:
    url: str
    port: int
    dir: Path
    env: dict[str, str]
    database: str
    redis: str

    def node_url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port + n}"

    def pid(self, name: str) -> int:
        return int((self.dir / f"{name}.pid").read_text())

    def node_of(self, origin_url: str) -> int:
        """1 or 2 for a node URL as the nodes announce themselves (LIVEMALL_NODE_URL)."""
        return {self.node_url(n): n for n in (1, 2)}[origin_url]

    def ensure_running(self) -> None:
        """Start whatever a test stopped or killed (`start` leaves running parts alone), then
        wait until nginx hands out sessions on both nodes again: it stops trying a node that
        failed for `fail_timeout` (deploy/nginx), so a revived node is not used at once."""
        started = subprocess.run([str(SCRIPT), "start"], env=self.env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, f"restart failed: {started.stderr}\n" + "\n".join(
            f"{name}: {self.log(name)[-1500:]}" for name in ("node1", "node2"))
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while seen != {"n1", "n2"}:
            assert time.monotonic() < deadline, f"nginx only reaches {seen} after the restart"
            handshake = self.url + "/socket.io/?EIO=4&transport=polling"
            with urllib.request.urlopen(handshake, timeout=5) as response:
                sid = json.loads(response.read().decode()[1:])["sid"]  # Engine.IO OPEN packet: "0{…}"
            seen.add(sid.split(".", 1)[0])
            time.sleep(0.2)

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="session")
def cluster(redis_url: str, pg_template, tmp_path_factory) -> Iterator[Cluster]:
    yield from run_cluster(redis_url, pg_template, tmp_path_factory)


def run_cluster(redis_url: str, pg_template, tmp_path_factory, **node_env: str) -> Iterator[Cluster]:
    """Start a cluster (extra LIVEMALL_* settings for its nodes in ``node_env``), yield it,
    stop it and drop its database."""
    for binary, package in (("nginx", "nginx"), ("turnserver", "coturn")):
        if shutil.which(binary) is None and shutil.which(binary, path="/usr/sbin:/usr/bin") is None:
            missing_service(f"{package} is not installed (deploy/local-cluster installs it with apt-get)")
    if pg_template is None:
        missing_service("PostgreSQL is not reachable")
    name = f"lm_cluster_{uuid.uuid4().hex[:8]}"
    pg_exec(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    port = _free_port_block(4)  # nginx, the two nodes, nginx's TLS listener
    state = tmp_path_factory.mktemp("cluster")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMALL_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        PYTHON=sys.executable,
        PYTHONPATH=str(ROOT),
        LIVEMALL_CLUSTER_PORT=str(port),
        LIVEMALL_CLUSTER_DIR=str(state),
        LIVEMALL_DATABASE=pg_url(name),
        LIVEMALL_REDIS=redis_url,
        LIVEMALL_TURN_PORT=str(free_port()),
        # Node settings the fault tests rely on, passed through the script's environment:
        # phantom viewers of a killed node expire after 5 s, a drain settles for 3 s and a
        # node exits within 8 s of SIGTERM.
        LIVEMALL_PRESENCE_TIMEOUT="5",
        # Every test client comes through nginx from 127.0.0.1: counted as people, they
        # would be at most 5 anonymous viewers (docs/operations.md, "One client's share").
        LIVEMALL_ANONYMOUS_VIEWERS_PER_ADDRESS="1000",
        LIVEMALL_DRAIN_SETTLE="3",
        LIVEMALL_SHUTDOWN_GRACE="8",
    )
    env.update(node_env)
    started = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        logs = "\n".join(p.read_text()[-2000:] for p in state.glob("*.log"))
        subprocess.run([str(SCRIPT), "stop"], env=env, timeout=60)
        pytest.fail(f"local-cluster start failed: {started.stderr}\n{logs}")
    assert started.stdout.strip().endswith(f"http://127.0.0.1:{port}")
    yield Cluster(f"http://127.0.0.1:{port}", port, state, env, pg_url(name), redis_url)
    subprocess.run([str(SCRIPT), "stop"], env=env, timeout=120)
    pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _free_port_block(count: int) -> int:
    """The first of `count` consecutive ports free on every address, below the kernel's
    ephemeral range (32768 on): a block taken from there can be handed to any outgoing
    connection or other cluster before nginx binds it ("Address already in use" in CI)."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    s = stack.enter_context(socket.socket())
                    s.bind(("0.0.0.0", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


# --- Per-test clients -------------------------------------------------------------------

@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def api(cluster: Cluster, http: aiohttp.ClientSession) -> Api:
    """The API through nginx, as every client outside the cluster sees it."""
    return Api(http, cluster.url)


@pytest.fixture
async def host_token(api: Api) -> str:
    return await api.login(HOST)


@pytest.fixture
async def peers() -> AsyncIterator[list[Any]]:
    """WebRTC peers and Socket.IO clients to close at the end, whatever the test did."""
    created: list[Any] = []
    yield created
    await asyncio.gather(*(p.close() for p in created), return_exceptions=True)
