"""Which node holds a show's media, and forwarding WHIP/WHEP requests to it.

nginx already sends every WHIP/WHEP request of a show to one node by hashing the show
id, but the node set can change under a live show (a node restarts, one is drained).
The node that takes a publisher records itself in Redis as the show's origin; a node
asked about a show live elsewhere forwards the request there instead of answering
409. The media itself (UDP) then flows between the viewer and the origin directly,
since the SDP answer carries the origin's ICE candidates.

With edge pulling on (``edge_pull``), a WHEP request is not forwarded: the node itself
becomes a viewer of the origin (``offer``, once per show) and relays the show to its
own viewers (``LiveHub.pull``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from live.errors import OriginUnavailable, ShowNotLive
from web.cancellation import raise_if_cancelled

log = logging.getLogger(__name__)

FORWARDED = "X-Livemall-Forwarded"
TTL = 30  # seconds; refreshed every TTL/3 while the show is live here
# A node's heartbeat: a claim counts only while its node's heartbeat lives, so a node
# that dies (SIGKILL, power loss) loses its shows within seconds, not TTL.
HEARTBEAT_TTL = 3.0
HEARTBEAT_EVERY = 1.0
_PASSED_HEADERS = ("Content-Type", "Authorization", "X-Request-Id")
_RETURNED_HEADERS = ("Content-Type", "Location", "ETag", "Retry-After")


def _key(show_id: int) -> str:
    return f"livemall:show:{show_id}:origin"


def _alive_key(node_url: str) -> str:
    return f"livemall:node:{node_url}:alive"


class ShowOrigins:
    """Origin registry in Redis; a no-op when the node runs alone (no Redis or no node URL)."""

    def __init__(self, redis: aioredis.Redis | None, node_url: str, secret: str) -> None:
        self.redis = redis if node_url else None
        self.node_url = node_url
        self._secret = secret
        self._refreshers: dict[int, asyncio.Task] = {}
        self._http: aiohttp.ClientSession | None = None
        self._heartbeat: asyncio.Task | None = None
        self.pulled_from: dict[int, str] = {}  # edge shows: the origin each was pulled from

    def start(self) -> None:
        """Begin this node's heartbeat (its claims count while it lives)."""
        if self.redis is not None and self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            raise_if_cancelled()
            with contextlib.suppress(aioredis.RedisError):
                await self.redis.set(_alive_key(self.node_url), b"1", px=int(HEARTBEAT_TTL * 1000))
            await asyncio.sleep(HEARTBEAT_EVERY)

    async def declare_dead(self, origin: str) -> None:
        """Another node refused a connection: its process is gone. Its heartbeat is
        dropped at once (it sets it again within a second if it is in fact alive), so
        its shows can be taken over now rather than when the heartbeat runs out."""
        if self.redis is not None and origin != self.node_url:
            with contextlib.suppress(aioredis.RedisError):
                await self.redis.delete(_alive_key(origin))

    async def claim(self, show_id: int) -> None:
        if self.redis is None:
            return
        # The refresher starts first: if Redis is down right now, the claim appears
        # within TTL/3 of it coming back instead of never.
        self._refreshers[show_id] = asyncio.create_task(self._refresh(show_id))
        try:
            await self.redis.set(_key(show_id), self.node_url, ex=TTL)
        except aioredis.RedisError as exc:
            log.warning("show %s: origin not recorded yet (%s)", show_id, type(exc).__name__)

    async def release(self, show_id: int) -> None:
        task = self._refreshers.pop(show_id, None)
        if task is not None:
            task.cancel()
        if self.redis is None:
            return
        # Delete only our own claim: another node may have taken the show over since.
        key = _key(show_id)
        with contextlib.suppress(aioredis.RedisError):  # Redis down: the claim expires by itself
            if await self.redis.get(key) == self.node_url.encode():
                await self.redis.delete(key)

    async def origin(self, show_id: int) -> str | None:
        """The node holding the show, if its claim is live (its node's heartbeat too).
        Raises RedisError when Redis cannot answer."""
        value = await self.redis.get(_key(show_id))
        origin = value.decode() if value else None
        if origin is None or origin == self.node_url:
            return origin
        return origin if await self.redis.exists(_alive_key(origin)) else None

    async def elsewhere(self, show_id: int) -> str | None:
        """The origin URL of a show live on another node, if any."""
        if self.redis is None:
            return None
        try:
            origin = await self.origin(show_id)
        except aioredis.RedisError:
            return None  # Redis down: answer locally rather than fail the request
        return origin if origin and origin != self.node_url else None

    async def is_claimed(self, show_id: int) -> bool | None:
        """Whether a live node holds the show; None when that cannot be known (no
        registry, or Redis down), so a caller never ends a show on a guess."""
        if self.redis is None:
            return None
        try:
            return await self.origin(show_id) is not None
        except aioredis.RedisError:
            return None

    async def _refresh(self, show_id: int) -> None:
        while True:
            raise_if_cancelled()  # else a swallowed cancel keeps claiming an ended show
            await asyncio.sleep(TTL / 3)
            with contextlib.suppress(aioredis.RedisError):
                await self.redis.set(_key(show_id), self.node_url, ex=TTL)

    async def forward(self, request: web.Request, origin: str, body: bytes | None) -> web.Response:
        headers = {h: request.headers[h] for h in _PASSED_HEADERS if h in request.headers}
        headers[FORWARDED] = forward_proof(self._secret, request.method, request.path)
        try:
            async with self._client().request(request.method, origin + request.path, data=body, headers=headers) as r:
                payload = await r.read()
                response = web.Response(status=r.status, body=payload)
                for name in _RETURNED_HEADERS:
                    if name in r.headers:
                        response.headers[name] = r.headers[name]
                for value in r.headers.getall("Link", []):
                    response.headers.add("Link", value)
                return response
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # The origin died or is unreachable: the client may retry; by then its
            # heartbeat has run out (a refused connection drops it at once).
            log.warning("origin %s of show %s unreachable: %s", origin, request.match_info.get("show_id"),
                        type(exc).__name__)
            if _refused(exc):
                await self.declare_dead(origin)
            raise OriginUnavailable("the node holding this show is unreachable; retry", refused=_refused(exc)) from exc

    async def offer(self, origin: str, show_id: int, offer_sdp: str, request_id: str | None = None) -> str:
        """An edge's WHEP exchange with the show's origin: POST the offer, return the SDP
        answer. Marked as forwarded, so the origin answers itself (no pull or forward
        loop). Raises ShowNotLive if the origin has no such show, OriginUnavailable if
        it cannot be reached or answers otherwise."""
        path = f"/whep/{show_id}"
        headers = {"Content-Type": "application/sdp", FORWARDED: forward_proof(self._secret, "POST", path)}
        if request_id:
            headers["X-Request-Id"] = request_id
        try:
            async with self._client().post(origin + path, data=offer_sdp.encode(),
                                           headers=headers) as r:
                body = await r.text()
                if r.status == 201:
                    return body
                if r.status == 409:
                    raise ShowNotLive(f"show {show_id} is not live on its origin")
                raise OriginUnavailable(f"the origin answered {r.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("origin %s of show %s unreachable: %s", origin, show_id, type(exc).__name__)
            if _refused(exc):
                await self.declare_dead(origin)
            raise OriginUnavailable("the node holding this show is unreachable; retry", refused=_refused(exc)) from exc

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        return self._http

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        for show_id in list(self._refreshers):  # release() stops each refresher
            with contextlib.suppress(Exception):
                await self.release(show_id)
        if self._http is not None:
            await self._http.close()


def _refused(exc: BaseException) -> bool:
    """Nothing listens at the node's address: its process is gone."""
    return isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ConnectionRefusedError)


PROOF_WINDOW = 60  # seconds a forwarding proof stays valid (node clocks agree to NTP)


def forward_proof(secret: str, method: str, path: str, now: float | None = None) -> str:
    """What a node puts in X-Livemall-Forwarded: the time and an HMAC of it with the
    request line under the nodes' shared secret. A plain flag could be sent by any
    client to make a node answer for a show it does not hold (a second publisher on
    another node) or to skip the rate limits the forwarding node already applied."""
    stamp = str(int(time.time() if now is None else now))
    mac = hmac.new(secret.encode(), f"{stamp} {method} {path}".encode(), hashlib.sha256).hexdigest()
    return f"{stamp}.{mac}"


def was_forwarded(request: web.Request, secret: str) -> bool:
    """Whether another node of this service forwarded the request (a valid, fresh proof)."""
    value = request.headers.get(FORWARDED)
    if not value:
        return False
    stamp, _, _ = value.partition(".")
    # isascii: str.isdigit() also takes "²", which int() refuses.
    if not (stamp.isascii() and stamp.isdigit()) or abs(time.time() - int(stamp)) > PROOF_WINDOW:
        return False
    return hmac.compare_digest(value, forward_proof(secret, request.method, request.path, now=int(stamp)))
