"""Admission: how much of a node one client address may hold (issue 14, items 1, 2, 5, 6).

One client used to open 6,000-12,000 sockets, each counted as a viewer and each making
database queries as it joined. Now, per client address (web/client_address.py: the peer,
or behind a trusted proxy the address it forwarded; an IPv6 /64 is one address):

- Engine.IO sessions: at most 2 x `sockets_per_address` open at once. The handshake
  beyond that is refused with 429 before any session exists. The slack is for reconnects
  whose old session the node has not yet seen end, and for sessions that never join.
- Socket.IO connections: at most `sockets_per_address`; beyond that the namespace
  connect is refused with `too_many_connections` and the session is closed.
- Anonymous viewers: one address adds at most `anonymous_viewers_per_address` to the
  live count, the peak and `show_viewers` (its sockets share that many viewer keys).
- Reactions: `reactions_per_address` taps a second, one budget for all its sockets.
- A polling POST larger than the Engine.IO payload limit gets 413 and its session is
  closed. (A slow body is nginx's `client_body_timeout`; a node exposed directly bounds
  how many one address holds by `http_connections_per_address`. No timeout here: the
  POST carrying a Socket.IO CONNECT runs the whole join before it is answered.)

Counts are per node: behind nginx, `limit_conn` bounds the total (deploy/nginx).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import Counter

from aiohttp import web

from rooms import engineio_hooks
from web.client_address import client_group
from web.errors import json_error


def request_address(environ: dict) -> str:
    """The client's address key for an Engine.IO/Socket.IO environ."""
    request = environ.get("aiohttp.request")
    if request is None:
        return "unknown"
    return client_group(request)


class AddressCounts:
    """Holders (session ids) per address, with a cap checked and taken in one step."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: Counter[str] = Counter()
        self._holders: dict[str, str] = {}

    def claim(self, holder: str, address: str) -> bool:
        if holder in self._holders:
            return True
        if self._counts[address] >= self.limit:
            return False
        self._counts[address] += 1
        self._holders[holder] = address
        return True

    def release(self, holder: str) -> None:
        address = self._holders.pop(holder, None)
        if address is None:
            return
        self._counts[address] -= 1
        if self._counts[address] <= 0:
            del self._counts[address]

    def count(self, address: str) -> int:
        return self._counts.get(address, 0)

    def address_of(self, holder: str) -> str | None:
        return self._holders.get(holder)

    def __len__(self) -> int:
        return len(self._holders)


class AnonymousKeys:
    """Viewer keys for anonymous sockets: at most `per_address` distinct keys per
    address, so a flood from one address counts as that many viewers, not thousands.

    The key names the address by an HMAC (the node secret), never the address itself:
    `show_viewers` keeps no IP addresses. The process's id is part of what is hashed:
    keys shared by processes would make two people behind one address, on two
    nodes, one viewer; so the bound is per address and per process (a few nodes).
    """

    def __init__(self, secret: str, per_address: int, process_id: str) -> None:
        self._secret = secret.encode()
        self._process = process_id
        self.per_address = max(1, per_address)
        self._slots: dict[str, Counter[int]] = {}
        self._held: dict[str, tuple[str, int]] = {}

    def _digest(self, address: str) -> str:
        return hmac.new(self._secret, f"{self._process}|{address}".encode(), hashlib.sha256).hexdigest()[:16]

    def take(self, sid: str, address: str) -> str:
        slots = self._slots.setdefault(address, Counter())
        # The least used slot, lowest first: N viewers of one address get N keys up to the cap.
        slot = min(range(self.per_address), key=lambda s: (slots[s], s))
        slots[slot] += 1
        self._held[sid] = (address, slot)
        return f"a:{self._digest(address)}:{slot}"

    def give_back(self, sid: str) -> None:
        held = self._held.pop(sid, None)
        if held is None:
            return
        address, slot = held
        slots = self._slots[address]
        slots[slot] -= 1
        if slots[slot] <= 0:
            del slots[slot]
        if not slots:
            del self._slots[address]


class TapBudget:
    """Reaction taps per address per second, shared by all the address's sockets."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._second = 0
        self._taps: Counter[str] = Counter()

    def allow(self, address: str, now: float) -> bool:
        second = int(now)
        if second != self._second:
            self._second, self._taps = second, Counter()
        if self._taps[address] >= self.per_second:
            return False
        self._taps[address] += 1
        return True


class EngineGate:
    """The aiohttp handler for /socket.io/: bounds what reaches python-engineio."""

    def __init__(self, eio, sessions: AddressCounts) -> None:
        self.eio = eio
        self.sessions = sessions
        self.refused: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        sid = request.query.get("sid")
        if sid is None and request.method == "GET":
            address = client_group(request)
            if self.sessions.count(address) >= self.sessions.limit:
                self.refused["too_many_sessions"] += 1
                response = json_error(429, "too_many_connections",
                                      "too many connections from your address; close some and retry",
                                      retry_after=5)
                response.headers["Retry-After"] = "5"
                return response
        if request.method == "POST" and sid is not None:
            return await self._post(request, sid)
        return await self.eio.handle_request(request)

    async def _post(self, request: web.Request, sid: str) -> web.StreamResponse:
        limit = engineio_hooks.max_payload(self.eio)
        length = request.content_length
        if length is None and request.body_exists:
            # Engine.IO clients always send Content-Length; engineio would read 0 bytes.
            return self._refuse(request, sid, 411, "length_required", "send Content-Length")
        if length is not None and length > limit:
            # engineio's own path answers 400 only after `disconnect` waits for this
            # session's queue to be read, which a client that never polls never does.
            return self._refuse(request, sid, 413, "payload_too_large", f"a polling request carries at most {limit} bytes")
        return await self.eio.handle_request(request)

    def _refuse(self, request: web.Request, sid: str, status: int, code: str, message: str) -> web.Response:
        self.refused[code] += 1
        sock = engineio_hooks.session_of(self.eio, sid)
        if sock is not None:
            task = asyncio.create_task(engineio_hooks.close_session(sock))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        response = json_error(status, code, message)
        response.force_close()  # the unread body stays unread: this connection is done
        return response
