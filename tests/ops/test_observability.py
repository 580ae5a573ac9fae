"""Metrics, readiness, request ids, redacted logs and the drain refusal."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, test_settings
from web.drain import DRAIN
from web.logs import JsonFormatter, redact


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_parse_and_count_requests_by_route_template(client):
    await client.get("/api/products/1")
    await client.get("/api/products/2")
    response = await client.get("/metrics")
    assert response.status == 200
    samples = _samples(await response.text())
    key = (
        "livemall_http_request_seconds_count",
        (("method", "GET"), ("route", "/api/products/{product_id}"), ("status", "2xx")),
    )
    assert samples[key] >= 2
    # No per-id label: the product ids never appear as label values.
    assert not any("/api/products/1" == dict(labels).get("route") for _, labels in samples)


async def test_readyz_is_ok_with_a_reachable_database(client):
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["checks"] == {"database": "ok"}


async def test_readyz_is_503_when_redis_is_unreachable(aiohttp_client, demo_db):
    from web.app import create_app

    app = create_app(test_settings(demo_db, redis=f"redis://127.0.0.1:{free_port()}/0"))
    client = await aiohttp_client(app)
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "not_ready" and body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] != "ok"


async def test_every_response_carries_a_request_id(client):
    response = await client.get("/api/committees", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    fresh = await client.get("/api/committees", headers={"X-Request-Id": "bad id; with spaces"})
    assert fresh.headers["X-Request-Id"] != "bad id; with spaces" and len(fresh.headers["X-Request-Id"]) == 16
    missing = await client.get("/api/nope")
    assert missing.status == 404 and missing.headers.get("X-Request-Id")


async def test_a_draining_node_refuses_new_viewers_and_turns_unready(client):
    client.app[DRAIN].draining = True
    response = await client.post("/whep/1", data="v=0", headers={"Content-Type": "application/sdp"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert (await response.json())["error"] == "draining"
    assert (await client.get("/readyz")).status == 503
    # Ordinary API calls still work while the node finishes what it has.
    assert (await client.get("/api/committees")).status == 200


def test_log_lines_never_carry_tokens_or_passwords():
    assert redact("Authorization: Bearer eyJhbGciOi.abc") == "Authorization: Bearer ***"
    assert "hunter2" not in redact('{"email": "a@b.c", "password": "hunter2"}')
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "login token=%s", ("s3cr3t",), None)
    assert "s3cr3t" not in JsonFormatter().format(record)


async def test_a_drain_hook_that_never_returns_does_not_hold_the_drain_past_its_settle_time(client):
    import asyncio

    from web.drain import drain

    finished: list[str] = []

    async def stuck() -> None:
        await asyncio.Event().wait()

    async def after() -> None:
        finished.append("after")

    client.app[DRAIN].hooks[:0] = [stuck]
    client.app[DRAIN].hooks.append(after)
    # Without the bound this waits forever; the hooks after the stuck one still run.
    await asyncio.wait_for(drain(client.app, 1.0), 10)
    assert finished == ["after"] and client.app[DRAIN].draining


def test_a_serving_process_has_its_start_up_heap_frozen_and_drains_within_the_grace_period_on_sigterm(
        tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMALL_")}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[2]), LIVEMALL_DRAIN_SETTLE="1",
               LIVEMALL_SHUTDOWN_GRACE="6", LIVEMALL_LOG_JSON="true")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    # Start-up objects are out of the garbage collector's sight (web.cli.freeze_startup_heap).
    metrics = _samples(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
    assert metrics[("livemall_process_gc_frozen_objects", ())] > 10_000
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=10) == 0
    assert time.monotonic() - started < 6
    output = server.stdout.read()
    assert '"msg": "draining: refusing new sessions"' in output


async def test_an_unreachable_database_is_503_json(aiohttp_client, tmp_path):
    from web.app import create_app

    # A PostgreSQL URL with nothing listening: every query fails to connect.
    url = f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none"
    client = await aiohttp_client(create_app(test_settings(url)))
    response = await client.get("/api/committees")
    assert response.status == 503
    assert (await response.json())["error"] == "unavailable"
    assert response.headers["Retry-After"] == "2"


async def test_a_slow_shutdown_logs_each_task_still_running_with_its_stack(caplog):
    import asyncio

    from web.cli import _log_pending_tasks

    async def stuck_in_cleanup() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(stuck_in_cleanup())
    await asyncio.sleep(0)
    caplog.set_level(logging.ERROR, logger="livemall")
    _log_pending_tasks()
    task.cancel()
    waiting = [r.getMessage() for r in caplog.records if r.getMessage().startswith("shutdown still waiting on")]
    assert any("stuck_in_cleanup" in message and "Event().wait()" in message for message in waiting)
