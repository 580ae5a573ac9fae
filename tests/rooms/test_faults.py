"""Faults around the rooms with real processes: Redis restarting mid-show (a
redis-server of the test's own, never the machine's)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.rooms.conftest import BUYER, HOST, SHOW, RedisServer, Viewer, load_demo_into, serve_nodes


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


async def chat_reaches(sender: Viewer, receiver: Viewer, text: str, within: float = 20) -> dict:
    """Send until a message is accepted (refused `unavailable` while Redis is away), then
    it must reach `receiver`; returns it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    attempt = 0
    while loop.time() < deadline:
        attempt += 1
        reply = await sender.call("chat", {"text": f"{text} #{attempt}"})
        if reply["ok"]:
            # Accepted means delivered everywhere, even if the other process is still
            # reconnecting to Redis: the stream keeps it until that process reads on.
            return await receiver.next("chat", lambda m: m["id"] == reply["id"], timeout=10)
        assert reply["error"] == "unavailable", reply
        await asyncio.sleep(0.2)  # nothing to wait on: Redis is coming back
    raise AssertionError(f"{text!r} did not get through within {within} s")


async def test_chat_resumes_across_processes_after_redis_restarts_mid_show(postgres_url, own_redis, tmp_path):
    await load_demo_into(postgres_url)
    async with serve_nodes(postgres_url, own_redis.url, tmp_path, chat_rate_count="1000") as (a, b, node_a, node_b):
        host = await a.join(HOST)
        buyer = await b.join(BUYER)
        before = await buyer.call("chat", {"text": "before the restart"})
        await host.next("chat", lambda m: m["id"] == before["id"])
        sid = buyer.client.get_sid()

        own_redis.kill()
        during = await buyer.call("chat", {"text": "while Redis is down"})
        # The host is not rate limited, so the host's message is accepted and stored...
        hosts = await host.call("chat", {"text": "host while Redis is down"})
        own_redis.start()  # empty, on the same port

        assert during["ok"] is False and during["error"] == "unavailable"
        assert hosts["ok"] is True, hosts
        # ...and reaches the other process's sockets once Redis is back.
        await buyer.next("chat", lambda m: m["id"] == hosts["id"], timeout=15)
        assert (await chat_reaches(buyer, host, "node two to one"))["user"]["name"] == "王芳"
        assert (await chat_reaches(host, buyer, "node one to two"))["user"]["role"] == "host"
        # Neither the processes nor the clients were restarted.
        assert node_a.proc.poll() is None and node_b.proc.poll() is None
        assert buyer.client.connected and buyer.client.get_sid() == sid
        # Presence is rebuilt in the new Redis from each process's own sockets.
        client = aioredis.from_url(own_redis.url)
        try:
            for _ in range(50):
                if await client.zcard(f"lm:presence:v:{SHOW}") == 2:
                    break
                await asyncio.sleep(0.1)
            assert await client.zcard(f"lm:presence:v:{SHOW}") == 2
        finally:
            await client.aclose()
