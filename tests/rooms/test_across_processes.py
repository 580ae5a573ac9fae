"""Several processes behind different ports act as one service through Redis (the test
run's own redis-server): chat, pins, segments and other packages' events reach clients
on every process, viewer counts add up, limits hold across processes, and a process
killed with SIGKILL leaves no phantom viewers after the presence timeout."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.rooms.conftest import ADMIN, BUYER, HOST, MEMBER, SHOW, Node, Server, load_demo_into, serve_nodes
from tests.security.test_rules_host_role import HOST_ID, set_role
from web.appkeys import EVENTS


async def place_order(server: Server, email: str, *, product_id: int, quantity: int) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.url}/api/orders",
            json={"product_id": product_id, "quantity": quantity, "show_id": SHOW},
            headers={"Authorization": f"Bearer {await server.token(email)}", "Idempotency-Key": f"o-{product_id}"},
        ) as response:
            assert response.status == 201, await response.text()
            return await response.json()


@pytest.fixture
async def redis_clean(redis_url: str) -> str:
    """The test run's redis-server, emptied: presence and limits of earlier tests are gone."""
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    return redis_url


@pytest.fixture
async def pair(start, redis_clean) -> tuple[Server, Server]:
    """Two apps in this process on different ports, sharing the database and Redis."""
    return await start(redis=redis_clean, node_name="n1"), await start(redis=redis_clean, node_name="n2")


async def test_chat_sent_on_one_process_reaches_clients_on_the_other(pair):
    a, b = pair
    sender = await a.join(BUYER)
    listener = await b.join(MEMBER)

    ack = await sender.call("chat", {"text": "across processes"})

    assert (await listener.next("chat", lambda m: m["id"] == ack["id"]))["text"] == "across processes"


async def test_pin_and_segment_reach_the_other_process(pair):
    a, b = pair
    host = await a.join(HOST)
    viewer = await b.join(BUYER)

    await host.call("segment", {"segment_id": 2})
    await host.call("pin", {"product_id": 5})

    assert (await viewer.next("segment"))["committee"]["code"] == "cosmetics"
    assert (await viewer.next("pin"))["product"]["id"] == 5


async def test_events_of_other_packages_reach_every_process(pair):
    a, b = pair
    on_a = await a.join(BUYER)
    on_b = await b.join(BUYER)

    await a.app[EVENTS].to_show(SHOW, "stock", {"product_id": 1, "stock": 3})
    await a.app[EVENTS].to_user(4, "order", {"id": 7})

    for client in (on_a, on_b):
        assert await client.next("stock") == {"product_id": 1, "stock": 3}
        assert await client.next("order") == {"id": 7}


async def test_viewer_counts_add_up_across_processes_and_count_a_user_once(pair):
    a, b = pair
    watcher = await a.join(MEMBER)
    await a.join(None)
    await b.join(None)
    await b.join(MEMBER)  # the same user on the other process: still one viewer

    assert await watcher.next("viewers", lambda v: v["count"] == 3)


async def test_rate_limit_holds_across_processes(pair):
    a, b = pair
    on_a = await a.join(BUYER)
    on_b = await b.join(BUYER)
    for i in range(3):
        assert (await on_a.call("chat", {"text": f"a{i}"}))["ok"]
        if i < 2:
            assert (await on_b.call("chat", {"text": f"b{i}"}))["ok"]
    assert (await on_b.call("chat", {"text": "sixth"}))["error"] == "rate_limited"


async def test_mute_and_slow_mode_hold_across_processes(pair):
    a, b = pair
    host = await a.join(HOST)
    buyer = await b.join(BUYER)
    member = await b.join(MEMBER)

    await host.call("mute", {"user_id": 4, "seconds": 30})
    await host.call("slow_mode", {"seconds": 20})
    await member.next("slow_mode")

    assert (await buyer.call("chat", {"text": "hi"}))["error"] == "muted"
    assert (await member.call("chat", {"text": "one"}))["ok"]
    assert (await member.call("chat", {"text": "two"}))["error"] == "slow_mode"


async def test_a_host_demoted_on_one_process_stops_receiving_questions_on_the_other(pair):
    a, b = pair
    host = await b.join(HOST)
    admin = await b.join(ADMIN)  # in the host room too: tells when a question went out
    buyer = await b.join(BUYER)

    await set_role(a, HOST_ID, "buyer")  # the admin's request lands on the other process
    assert (await host.next("role"))["role"] == "buyer"  # sent after the revocation
    asked = await buyer.call("ask", {"text": "После понижения"})
    await admin.next("question", lambda q: q["id"] == asked["id"])
    await host.call("chat", {"text": "a round trip on the host's socket"})

    assert host.seen("question") == []


# --- real processes ------------------------------------------------------------------

@pytest.fixture
async def two_nodes(postgres_url: str, redis_clean: str, tmp_path: Path) -> AsyncIterator[tuple[Server, Server, Node, Node]]:
    await load_demo_into(postgres_url)
    async with serve_nodes(postgres_url, redis_clean, tmp_path) as (a, b, node_a, node_b):
        yield a, b, node_a, node_b


async def test_two_serve_processes_act_as_one_service(two_nodes):
    a, b, _, _ = two_nodes
    host = await a.join(HOST)
    watcher = await a.join(MEMBER)
    viewer = await b.join(BUYER)
    stock_before = watcher.seen("state")[0]["pin"]

    ack = await viewer.call("chat", {"text": "from node two"})
    assert (await host.call("segment", {"segment_id": 2}))["ok"]
    assert (await host.call("pin", {"product_id": 1}))["ok"]
    order = await place_order(a, BUYER, product_id=1, quantity=2)  # through node one's HTTP API

    for client in (watcher, viewer):
        assert (await client.next("chat", lambda m: m["id"] == ack["id"]))["user"]["name"] == "王芳"
        assert (await client.next("segment"))["committee"]["code"] == "cosmetics"
        pinned = (await client.next("pin"))["product"]
        assert pinned["id"] == 1 and pinned["price"] == 1200
        assert await client.next("stock") == {"product_id": 1, "stock": pinned["stock"] - 2}
        assert await client.next("sale") == {"product_id": 1, "quantity": 2}  # no buyer identity
        assert await client.next("viewers", lambda v: v["count"] == 3)
    assert await viewer.next("order", lambda o: o["id"] == order["id"])
    assert stock_before is None and a.url != b.url


async def test_killed_process_leaves_no_phantom_viewers(two_nodes):
    a, b, _, node_b = two_nodes
    watcher = await a.join(MEMBER)
    await b.join(BUYER)
    await b.join(None)
    await watcher.next("viewers", lambda v: v["count"] == 3)

    node_b.proc.send_signal(signal.SIGKILL)
    node_b.proc.wait()

    # The presence timeout is 3 s; refreshes run every second.
    assert await watcher.next("viewers", lambda v: v["count"] == 1, timeout=8)
