"""The README's first command works: `livemall demo && livemall serve` on embedded defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import free_port

LIVEMALL = [sys.executable, "-m", "web.cli"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMALL_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@contextmanager
def serving(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """`livemall serve` on embedded defaults in ``tmp_path``; its base URL once healthy."""
    port = free_port()
    server = subprocess.Popen(
        LIVEMALL + ["serve", "--port", str(port)], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(base + "/healthz")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_demo_then_serve_answers_and_keeps_sign_ins_across_a_restart(tmp_path):
    env = _env(tmp_path)
    for _ in range(2):  # the second load must change nothing
        subprocess.run(LIVEMALL + ["demo"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    assert (tmp_path / "livemall.db").exists()
    with serving(tmp_path, env) as base:
        assert len(_get(base + "/api/committees")) == 14
        shows = _get(base + "/api/shows")
        assert [s["title"] for s in shows] == ["K-Goods Live: Winter Special"]
        request = urllib.request.Request(
            base + "/api/auth/login", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"email": "buyer@livemall.example", "password": "livemall-demo"}).encode(),
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            token = json.loads(response.read())["token"]

    # Without LIVEMALL_SECRET the key that signs sessions is kept in livemall.secret
    # beside the database; one made per process signed everybody out at each restart.
    assert oct((tmp_path / "livemall.secret").stat().st_mode & 0o777) == "0o600"
    with serving(tmp_path, env) as base:
        me = urllib.request.Request(base + "/api/me", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(me, timeout=5) as response:
            assert json.loads(response.read())["user"]["email"] == "buyer@livemall.example"


def test_users_add_makes_a_host_who_can_sign_in(tmp_path):
    env = _env(tmp_path)
    result = subprocess.run(
        LIVEMALL + ["users", "add", "studio@example.com", "--role", "host", "--password", "s3cret-pw"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "studio@example.com is host" in result.stdout
    missing_pw = subprocess.run(
        LIVEMALL + ["users", "add", "new@example.com", "--role", "admin"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert missing_pw.returncode == 2 and "password" in missing_pw.stderr


def test_db_upgrade_reports_up_to_date(tmp_path):
    result = subprocess.run(
        LIVEMALL + ["db", "upgrade", "--database", f"sqlite+aiosqlite:///{tmp_path}/x.db"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
