"""What the cluster tests talk to the cluster with: the HTTP API, WHIP/WHEP peers and
Socket.IO clients. All real: aiohttp, aiortc peers that decode what they receive
(tests/live/conftest.py), python-socketio."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import socketio
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection, RTCSessionDescription

from tests.live.conftest import TestPublisher, TestViewer

SDP = {"Content-Type": "application/sdp"}
PASSWORD = "livemall-demo"  # the demo users' password
HOST = "host@livemall.example"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Waiters:
    """Futures resolved when a predicate over received state turns true."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def check(self) -> None:
        for predicate, future in list(self._waiting):
            if not future.done() and predicate():
                future.set_result(None)

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        if predicate():
            return
        future = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiting.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise AssertionError(f"{what} not reached within {timeout} s") from None
        finally:
            self._waiting.remove(entry)


async def eventually(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `check` (sync or async) until it returns something truthy: for state no event announces."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(interval)


class Api:
    """JSON over HTTP against one base URL (nginx, or one node directly)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    def at(self, base: str) -> Api:
        return Api(self.http, base)

    async def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> tuple[int, Any, Any]:
        headers = {**kwargs.pop("headers", {}), **(bearer(token) if token else {})}
        async with self.http.request(method, self.base + path, headers=headers, **kwargs) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body, response.headers

    async def ok(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        status, body, _ = await self.call(method, path, token, **kwargs)
        assert 200 <= status < 300, f"{method} {path}: {status} {body}"
        return body

    async def login(self, email: str = HOST, password: str = PASSWORD) -> str:
        return (await self.ok("POST", "/api/auth/login", json={"email": email, "password": password}))["token"]

    async def new_buyer(self) -> tuple[int, str]:
        """A fresh buyer account (own rate limits, own orders): (user id, token)."""
        email = f"buyer-{uuid.uuid4().hex[:10]}@cluster.example"
        body = await self.ok("POST", "/api/auth/register", json={
            "email": email, "password": PASSWORD, "name": "Cluster buyer", "country": "VN", "role": "buyer"})
        return body["user"]["id"], await self.login(email)

    async def new_show(self, host_token: str, product_ids: list[int] | None = None) -> int:
        when = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
        segments = [{"title": "Cluster segment", "committee": "food", "product_ids": product_ids or []}]
        show = await self.ok("POST", "/api/shows", host_token,
                             json={"title": f"Cluster show {uuid.uuid4().hex[:6]}", "scheduled_at": when,
                                   "segments": segments})
        return show["id"]

    async def product(self, name: str) -> dict[str, Any]:
        products = await self.ok("GET", "/api/products")
        return next(p for p in products if p["name"] == name)

    async def stock(self, product_id: int) -> int:
        return (await self.ok("GET", f"/api/products/{product_id}"))["stock"]

    async def show_status(self, show_id: int) -> str:
        return (await self.ok("GET", f"/api/shows/{show_id}"))["status"]


# --- Media ------------------------------------------------------------------------------

async def publish(api: Api, show_id: int, host_token: str, peers: list[Any]) -> tuple[TestPublisher, str]:
    """A host publishing over WHIP at `api.base`; returns the peer and its Location."""
    publisher = TestPublisher()
    peers.append(publisher)
    status, answer, headers = await api.call("POST", f"/whip/{show_id}", host_token,
                                             data=await publisher.offer(), headers=SDP)
    assert status == 201, f"WHIP: {status} {answer}"
    await publisher.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return publisher, headers["Location"]


async def play(api: Api, show_id: int, peers: list[Any], viewer: TestViewer | None = None) -> tuple[TestViewer, Any]:
    """A viewer playing over WHEP at `api.base`; returns the peer and the response headers."""
    viewer = viewer or TestViewer()
    peers.append(viewer)
    status, answer, headers = await api.call("POST", f"/whep/{show_id}", data=await viewer.offer(), headers=SDP)
    assert status == 201, f"WHEP: {status} {answer}"
    await viewer.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return viewer, headers


class RelayOnlyViewer(TestViewer):
    """A viewer that may only use relay candidates of the given TURN server: the same as a
    browser with `iceTransportPolicy: "relay"` behind a firewall that drops direct UDP."""

    def __init__(self, turn: RTCIceServer) -> None:
        super().__init__()
        unused = self.pc  # made by TestViewer without a configuration; never connected
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[turn], iceTransportPolicy=RTCIceTransportPolicy.RELAY))
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._waiters.check)
        self._unused = unused

    def selected_local_candidate_type(self) -> str:
        # aiortc exposes no candidate-pair stats: read aioice's nominated pair (component 1).
        ice = self.pc.getTransceivers()[0].receiver.transport.transport
        return ice._connection._nominated[1].local_candidate.type

    async def close(self) -> None:
        await self._unused.close()
        await super().close()


async def media_origin(redis_url: str, show_id: int) -> str | None:
    """The node URL Redis names as the show's origin (web/media_origin.py)."""
    client = aioredis.from_url(redis_url)
    try:
        value = await client.get(f"livemall:show:{show_id}:origin")
    finally:
        await client.aclose()
    return value.decode() if value else None


# --- Socket.IO --------------------------------------------------------------------------

class RoomClient:
    """A python-socketio client in a show room, collecting every event (batches unpacked)."""

    def __init__(self, base: str, show_id: int, token: str | None = None) -> None:
        self.base = base
        self.auth: dict[str, Any] = {"show": show_id, **({"token": token} if token else {})}
        self.sio = socketio.AsyncClient(reconnection_delay=0.5, reconnection_delay_max=2)
        self.events: list[tuple[str, Any]] = []
        self.nodes: list[str] = []  # the node of each (re)connection, in order
        self._waiters = Waiters()
        self.sio.on("*", self._on_event)
        self.sio.on("connect", self._on_connect)

    async def _on_connect(self) -> None:
        self.nodes.append(self.node)
        self._waiters.check()

    async def _on_event(self, event: str, data: Any = None) -> None:
        if event == "batch":
            self.events.extend((name, payload) for name, payload in data)
        else:
            self.events.append((event, data))
        self._waiters.check()

    async def connect(self) -> RoomClient:
        await self.sio.connect(self.base, auth=self.auth, wait_timeout=10)
        await self.until(lambda: self.seen("state"), what="state after connecting")
        return self

    @property
    def node(self) -> str:
        """The node holding this session: its name is the Engine.IO session id's prefix."""
        return (self.sio.eio.sid or "").split(".", 1)[0]

    def seen(self, event: str, where: Callable[[Any], bool] = lambda data: True) -> list[Any]:
        return [data for name, data in self.events if name == event and where(data)]

    def viewers(self) -> int | None:
        """The viewer count as this client last heard it (`viewers`, or a new `state`)."""
        for name, data in reversed(self.events):
            if name == "viewers":
                return data["count"]
            if name == "state":
                return data["viewers"]
        return None

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "event") -> None:
        await self._waiters.until(predicate, timeout, what)

    async def chat(self, text: str, timeout: float = 5.0) -> dict[str, Any]:
        return await self.sio.call("chat", {"text": text}, timeout=timeout)

    async def close(self) -> None:
        await self.sio.disconnect()
