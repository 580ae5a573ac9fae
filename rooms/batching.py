"""Room fan-out: events are buffered per room and written as one packet per window,
encoded once for every recipient.

Why: python-socketio's `emit(room=...)` encodes an event once but then creates one
task per recipient, each of which queues the packet for that socket's writer task,
which encodes and frames it again. At 1,000 sockets and tens of messages a second
that per-recipient Python work is the whole CPU budget (see docs/performance.md).

Here an event is JSON-encoded once when emitted. A room's events are flushed right
away when the room is idle (the same event-loop turn still coalesces) and otherwise
at most once per `window` seconds. One flush becomes one Socket.IO packet: the event
itself when there is one, else `["batch", [[event, data], ...]]`. The WebSocket frame
of that packet is built once and written straight to each socket's transport; a socket
that still has packets queued (its handshake, an ack, a slow reader) gets the same
pre-encoded packet through its Engine.IO queue instead, so order is kept.

Engine.IO's WebSocket is replaced by one without permessage-deflate: deflate works per
socket with its own context, which would undo the encode-once write (Node's engine.io
also ships with it off).
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engineio import packet as eio_packet

from rooms.bus import Bus, LocalBus
from rooms.engineio_hooks import WS_ATTR, websocket_transport, writing_paused

MAX_QUEUED = 2_000  # packets waiting for one socket before it counts as too slow
PER_MEMBER_BUDGET = 20e-6  # seconds of flush interval per room member (see window_for)


def dumps(value: Any) -> str:
    # UTF-8 as is: Korean and Cyrillic chat stays one byte-sequence, not \\uXXXX escapes.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def fragment(event: str, data: Any) -> str:
    return dumps([event, data])


def batch_body(fragments: list[str]) -> str:
    if len(fragments) == 1:
        return fragments[0]
    return '["batch",[' + ",".join(fragments) + "]]"


def _text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)  # FIN + text opcode, unmasked (server to client)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


class Member:
    """One Socket.IO connection as the broadcaster sees it."""

    __slots__ = ("sid", "sock", "held", "rooms", "slow")

    def __init__(self, sid: str, sock: Any) -> None:
        self.sid = sid
        self.sock = sock  # engineio.async_socket.AsyncSocket
        # Packets kept back until the socket has been sent its `state` (None: released).
        self.held: list[eio_packet.Packet] | None = []
        self.rooms: set[str] = set()
        self.slow = False


@dataclass
class BroadcastStats:
    flushes: int = 0
    events: int = 0
    deliveries: int = 0  # events times the sockets they were handed to
    direct_writes: int = 0
    queued_writes: int = 0
    slow_consumers: int = 0


class Broadcaster:
    def __init__(
        self,
        window: float,
        on_slow: Callable[[str], None],
        max_buffer: int = 4 * 1024 * 1024,
    ) -> None:
        self.window = window
        self.max_buffer = max_buffer
        self.bus: Bus = LocalBus()
        self.stats = BroadcastStats()
        self._on_slow = on_slow
        self._rooms: dict[str, dict[str, Member]] = {}
        self._members: dict[str, Member] = {}
        self._pending: dict[str, list[str]] = {}
        self._last_flush: dict[str, float] = {}
        # Told of every event for a room before it is queued (rooms/joining.py keeps
        # its cached show state current with it).
        self.on_deliver: Callable[[str, str], None] | None = None

    # --- membership ---------------------------------------------------------------

    def add(self, sid: str, sock: Any) -> Member:
        member = Member(sid, sock)
        self._members[sid] = member
        return member

    def join(self, sid: str, room: str) -> None:
        member = self._members[sid]
        member.rooms.add(room)
        self._rooms.setdefault(room, {})[sid] = member

    def leave(self, sid: str, room: str) -> None:
        member = self._members.get(sid)
        if member is not None:
            member.rooms.discard(room)
        members = self._rooms.get(room)
        if members is not None:
            members.pop(sid, None)
            if not members:
                del self._rooms[room]
                self._last_flush.pop(room, None)

    def remove(self, sid: str) -> None:
        member = self._members.pop(sid, None)
        if member is None:
            return
        for room in list(member.rooms):
            self.leave(sid, room)
        member.held = None
        sock = member.sock
        if not sock.upgraded:
            # A long-poll GET may still be waiting on the queue of a socket the client
            # closed; None ends it now rather than after the ping timeout (45 s), which
            # would also hold up a graceful shutdown.
            sock.queue.put_nowait(None)

    def release(self, sid: str) -> None:
        """The socket has its `state`: send what was held back, then deliver normally."""
        member = self._members.get(sid)
        if member is None or member.held is None:
            return
        held, member.held = member.held, None
        for pkt in held:
            self._enqueue(member, pkt)

    # --- sending ------------------------------------------------------------------

    def emit(self, room: str, event: str, data: Any, *, publish: bool = True) -> None:
        """Send to everyone in `room`, in this process and (via the bus) in the others."""
        frag = fragment(event, data)
        if publish:
            self.bus.publish(room, frag)
        self.deliver(room, frag)

    def deliver(self, room: str, frag: str) -> None:
        """Queue an already encoded event for this process's members of `room`."""
        if self.on_deliver is not None:
            self.on_deliver(room, frag)
        members = self._rooms.get(room)
        if members is None:
            return
        pending = self._pending.get(room)
        if pending is not None:
            pending.append(frag)
            return
        self._pending[room] = [frag]
        loop = asyncio.get_running_loop()
        due = self._last_flush.get(room, 0.0) + self.window_for(len(members))
        if due <= loop.time():
            loop.call_soon(self._flush, room)
        else:
            loop.call_at(due, self._flush, room)

    def window_for(self, members: int) -> float:
        """A busy room's flush interval: `window`, longer for very large rooms.

        One flush costs a write per member (≈5 µs each, mostly the kernel's); at
        PER_MEMBER_BUDGET per member and window the flushes of a busy room stay under
        about a quarter of a core, whatever its size, up to 4 × `window`.
        """
        return min(4 * self.window, max(self.window, members * PER_MEMBER_BUDGET))

    def send(self, sid: str, event: str, data: Any) -> None:
        """One socket only, in order with what it was already sent (e.g. `state`)."""
        member = self._members.get(sid)
        if member is not None:
            self.stats.deliveries += 1
            self._enqueue(member, eio_packet.Packet(eio_packet.MESSAGE, "2" + fragment(event, data)))

    def _flush(self, room: str) -> None:
        fragments = self._pending.pop(room, None)
        members = self._rooms.get(room)
        if not fragments or not members:
            return
        self._last_flush[room] = asyncio.get_running_loop().time()
        text = "2" + batch_body(fragments)  # Socket.IO EVENT on the default namespace
        pkt = eio_packet.Packet(eio_packet.MESSAGE, text)  # caches its encoding: "4" + text
        frame = _text_frame(pkt.encode().encode())
        stats = self.stats
        stats.flushes += 1
        stats.events += len(fragments)
        stats.deliveries += len(fragments) * len(members)
        for member in list(members.values()):
            if member.held is not None:
                member.held.append(pkt)
                continue
            sock = member.sock
            ws = getattr(sock, WS_ATTR, None)
            if ws is not None and sock.upgraded and not sock.upgrading and sock.queue.empty():
                transport = websocket_transport(ws)
                if transport is None or transport.is_closing():
                    continue
                # While the transport is paused the Engine.IO writer may be waiting to
                # drain with packets in hand: go through its queue to keep the order.
                if not writing_paused(ws):
                    transport.write(frame)
                    stats.direct_writes += 1
                    continue
                if transport.get_write_buffer_size() > self.max_buffer:
                    self._too_slow(member)
                    continue
            self._enqueue(member, pkt)

    def _enqueue(self, member: Member, pkt: eio_packet.Packet) -> None:
        sock = member.sock
        if sock.closed or sock.closing:
            return
        if sock.queue.qsize() >= MAX_QUEUED:
            self._too_slow(member)
            return
        sock.queue.put_nowait(pkt)
        self.stats.queued_writes += 1

    def _too_slow(self, member: Member) -> None:
        # A reader that cannot keep up is disconnected rather than buffered without
        # bound; it reconnects and catches up from its last message id.
        if not member.slow:
            member.slow = True
            self.stats.slow_consumers += 1
            self._on_slow(member.sid)
