"""Losing a node: SIGTERM drains it without losing an accepted order or a stored chat
message; SIGKILL leaves phantom viewers that fall out of the count within the presence
timeout. Each test brings the node back when it ends."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from typing import Any

import aiohttp
import pytest

from tests.cluster.clients import Api, RoomClient, eventually, play
from tests.cluster.test_cluster_media import _live_show

LAVER = "Seasoned Laver 20-pack"  # demo product with 300 in stock
PRESENCE_TIMEOUT = 5  # LIVEMALL_PRESENCE_TIMEOUT of the test cluster (conftest)
SHUTDOWN_GRACE = 8  # LIVEMALL_SHUTDOWN_GRACE of the test cluster


@pytest.fixture
def restore_nodes(cluster):
    yield
    cluster.ensure_running()


def _alive(pid: int) -> bool:
    """Running or still exiting. The node's parent (local-cluster) is gone, so init reaps it
    late, and a killed multi-threaded process shows a zombie leader while its other
    threads still hold the listening socket: gone means a zombie with one thread left."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    state, threads = fields[0], int(fields[17])
    return state != "Z" or threads > 1


async def _spread(cluster, show_id: int, token: str | None, peers: list, each: int) -> list[RoomClient]:
    """Clients connected through nginx until at least `each` landed on either node."""
    clients: list[RoomClient] = []
    for _ in range(4 * each + 4):
        client = RoomClient(cluster.url, show_id, token)
        peers.append(client)
        clients.append(await client.connect())
        if all(sum(c.node == n for c in clients) >= each for n in ("n1", "n2")):
            return clients
    raise AssertionError(f"nginx put the clients on {[c.node for c in clients]}")


class Buyer:
    """Orders through nginx, one at a time, until stopped; a failed attempt is retried with
    the same Idempotency-Key, as a client should."""

    def __init__(self, api: Api, token: str, product_id: int, show_id: int) -> None:
        self.api, self.token, self.product_id, self.show_id = api, token, product_id, show_id
        self.accepted: dict[int, int] = {}  # order id -> quantity
        self.retries = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and len(self.accepted) < 100:
            key = uuid.uuid4().hex
            while True:
                try:
                    status, body, _ = await self.api.call(
                        "POST", "/api/orders", self.token, headers={"Idempotency-Key": key},
                        json={"product_id": self.product_id, "quantity": 1, "show_id": self.show_id})
                except aiohttp.ClientError:
                    status, body = None, None
                if status == 201:
                    self.accepted[body["id"]] = body["quantity"]
                    break
                assert status in (None, 502, 503, 504), f"order refused: {status} {body}"
                self.retries += 1
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.1)


async def _chatter(client: RoomClient, acked: set[int], stop: asyncio.Event) -> None:
    """Chats until stopped; only acknowledged messages count as sent."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            ack = await client.chat(f"{client.node} says {n}", timeout=3)
        except Exception:  # noqa: BLE001 - disconnected or no ack: not sent, so nothing to keep
            ack = None
        if ack and ack.get("ok"):
            acked.add(ack["id"])
        await asyncio.sleep(0.15)


async def _refused_while_draining(node: Api, path: str, token: str | None = None) -> tuple[int, Any]:
    """POST a new session to a node that was just told to drain: the first answer after the
    signal took effect (a request that raced ahead of it may still be served)."""
    for _ in range(20):
        status, body, headers = await node.call("POST", path, token, data="v=0\r\n",
                                                headers={"Content-Type": "application/sdp"})
        if status == 503:
            return status, body, headers
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} was never refused: last answer {status} {body}")


async def test_sigterm_drains_a_node_without_losing_an_order_or_a_chat_message(
    api, cluster, host_token, peers, restore_nodes
):
    show_id, origin, _ = await _live_show(api, cluster, host_token, peers)
    drained, other = f"n{origin}", f"n{3 - origin}"
    node = api.at(cluster.node_url(origin))
    viewer, _ = await play(api, show_id, peers)
    await viewer.frames(10)
    clients = await _spread(cluster, show_id, host_token, peers, each=2)  # the host: no chat rate limit
    product = await api.product(LAVER)
    stock_before = product["stock"]
    _, buyer_token = await api.new_buyer()
    # The buyer watches (a sale is credited only to a show its buyer watches or watched).
    watching = RoomClient(cluster.url, show_id, buyer_token)
    peers.append(watching)
    await watching.connect()
    # ... and is in the audience ledger (written each second by the node it joined), which
    # outlives that node's drain; the live presence alone goes with its socket.
    await asyncio.sleep(1.5)
    buyer = Buyer(api, buyer_token, product["id"], show_id)
    acked: set[int] = set()
    stop = asyncio.Event()
    work = [asyncio.create_task(buyer.run(stop))] + [
        asyncio.create_task(_chatter(c, acked, stop)) for c in clients]
    try:
        await eventually(lambda: len(buyer.accepted) >= 3 and len(acked) >= 6, 15, "orders and chat flowing")
        pid = cluster.pid(f"node{origin}")
        os.kill(pid, signal.SIGTERM)
        exit_by = asyncio.get_running_loop().time() + SHUTDOWN_GRACE + 2  # 2 s for a busy machine

        # New publishers and viewers are refused with Retry-After, on the node and through nginx.
        for path, token in ((f"/whep/{show_id}", None), (f"/whip/{await api.new_show(host_token)}", host_token)):
            status, body, headers = await _refused_while_draining(node, path, token)
            assert body["error"] == "draining" and int(headers["Retry-After"]) > 0
        status, _, headers = await api.call("POST", f"/whep/{show_id}", data="v=0\r\n",
                                            headers={"Content-Type": "application/sdp"})
        assert status == 503 and "Retry-After" in headers

        # Its peer connections end, its sockets come back on the other node through nginx.
        await viewer.until(lambda: "video" in viewer.ended, timeout=SHUTDOWN_GRACE)
        await eventually(lambda: not _alive(pid), exit_by - asyncio.get_running_loop().time(),
                         "the drained node's exit within its grace period")
        # ...by itself, not cut short by the grace-period watchdog (web/cli.py).
        stuck = [line for line in cluster.log(f"node{origin}").splitlines()
                 if "shutdown still waiting" in line or "did not stop when cancelled" in line]
        assert not stuck, stuck[:3]
        for client in clients:
            back = (lambda c=client: c.sio.connected and c.nodes[-1] == other
                    and (c.nodes[0] == other or len(c.nodes) >= 2))
            await client.until(back, timeout=30, what=f"a client of {drained} back on {other}")
        acked_before_reconnect = len(acked)
        await eventually(lambda: len(acked) >= acked_before_reconnect + 4, 10, "chat after reconnecting")
    finally:
        stop.set()
        outcomes = await asyncio.gather(*work, return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert not failures, failures

    # Nothing accepted was lost: every order is stored and the stock matches them exactly.
    mine = {o["id"] for o in await api.ok("GET", "/api/orders", buyer_token)}
    assert set(buyer.accepted) <= mine
    assert await api.stock(product["id"]) == stock_before - sum(buyer.accepted.values())
    # Every acknowledged chat message is stored: a reconnecting client's catch-up has it.
    reader = RoomClient(cluster.url, show_id)
    reader.auth["last_id"] = min(acked) - 1
    peers.append(reader)
    await reader.connect()
    stored = {m["id"] for m in reader.seen("state")[0]["chat"]}
    assert acked <= stored, f"lost chat messages: {sorted(acked - stored)}"
    assert await api.show_status(show_id) == "ended"
    assert "draining: refusing new sessions" in cluster.log(f"node{origin}")


async def test_a_killed_nodes_viewers_reconnect_and_its_phantoms_leave_the_count(
    api, cluster, host_token, peers, restore_nodes
):
    show_id, origin, _ = await _live_show(api, cluster, host_token, peers)
    killed, survivor = f"n{origin}", f"n{3 - origin}"
    clients = await _spread(cluster, show_id, None, peers, each=2)  # anonymous: one viewer per socket
    total = len(clients)
    for client in clients:
        await client.until(lambda c=client: c.viewers() == total, what=f"{total} viewers")

    pid = cluster.pid(f"node{origin}")
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: not _alive(pid), 5, "the killed node gone")

    # Its show's media is gone with it: a new viewer is told to retry, never 409 or 500.
    status, body, headers = await api.call("POST", f"/whep/{show_id}", data="v=0\r\n",
                                           headers={"Content-Type": "application/sdp"})
    assert status == 503 and body["error"] == "origin_unavailable" and int(headers["Retry-After"]) > 0
    for client in clients:
        back = (lambda c=client: c.sio.connected and c.nodes[-1] == survivor
                and (c.nodes[0] == survivor or len(c.nodes) >= 2))
        await client.until(back, timeout=30, what=f"a client of {killed} reconnected through nginx")
    # The reconnected sockets count at once; the dead node's entries expire.
    for client in clients:
        await client.until(lambda c=client: c.viewers() == total, timeout=PRESENCE_TIMEOUT + 15,
                           what=f"the count back at {total}")
    assert (await api.ok("GET", f"/api/shows/{show_id}"))["viewers"] == total
