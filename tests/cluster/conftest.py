"""A real cluster for the deployment tests: `deploy/local-cluster start` with nginx, two
nodes, coturn, a PostgreSQL database of the test's own and the test run's redis-server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

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

    def restart_node(self, n: int) -> None:
        """Start node n again after a test killed it (same command as the script)."""
        subprocess.run([str(SCRIPT), "start"], env=self.env, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def cluster(redis_url: str, pg_template, tmp_path_factory) -> Iterator[Cluster]:
    for binary, package in (("nginx", "nginx"), ("turnserver", "coturn")):
        if shutil.which(binary) is None and shutil.which(binary, path="/usr/sbin:/usr/bin") is None:
            missing_service(f"{package} is not installed (deploy/local-cluster installs it with apt-get)")
    if pg_template is None:
        missing_service("PostgreSQL is not reachable")
    name = f"lm_cluster_{uuid.uuid4().hex[:8]}"
    pg_exec(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    port = free_port()
    while port + 2 > 65000:
        port = free_port()
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
    )
    started = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        logs = "\n".join(p.read_text()[-2000:] for p in state.glob("*.log"))
        subprocess.run([str(SCRIPT), "stop"], env=env, timeout=60)
        pytest.fail(f"local-cluster start failed: {started.stderr}\n{logs}")
    assert started.stdout.strip().endswith(f"http://127.0.0.1:{port}")
    yield Cluster(f"http://127.0.0.1:{port}", port, state, env, pg_url(name), redis_url)
    subprocess.run([str(SCRIPT), "stop"], env=env, timeout=120)
    pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
