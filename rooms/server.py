"""The realtime rooms of one process: the Socket.IO server, who is connected where,
room fan-out, presence, limits and the background tasks that keep them going.

`setup(app)` attaches everything to the aiohttp app; `rooms/events.py` holds the
Socket.IO handlers.

Room names (never shown to clients):
    show:{id}   everyone watching a show          u:{id}     every socket of one user
    host:{id}   the show's host and admins         cv:{id}    a co-view room
    cvo:{id}    the owner's sockets in a co-view room
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import socketio
from aiohttp import WSCloseCode, web
from sqlalchemy import select

from orders.db import Database
from orders.models import Role, User
from orders.shows import holds_host_role
from rooms import engineio_hooks
from rooms import reactions as reactions_mod
from rooms.admission import AddressCounts, AnonymousKeys, EngineGate, TapBudget, request_address
from rooms.batching import Broadcaster
from rooms.engineio_hooks import WS_ATTR
from rooms.bus import LocalBus, RedisBus
from rooms.chat import Author, ChatWriter
from rooms.joining import JoinState
from rooms.moderation import Limits, MemoryLimits, RedisLimits
from rooms.presence import AudienceLedger, MemoryStore, Presence, RedisStore
from rooms.reactions import Reactions, TapLimit
from web.appkeys import DB, EVENTS, REDIS, SETTINGS, TOKENS, VIEWER_COUNT
from web.cancellation import raise_if_cancelled
from web.drain import DRAIN
from web.metrics import Labelled, register_stats
from web.settings import Settings

log = logging.getLogger(__name__)

PRESENCE_INTERVAL = 1.0  # seconds: viewer counts are pushed at most this often
# Show-room events that change nothing a joining socket's `state` holds.
STATELESS = ('["viewers",', '["reactions",', '["sale",')


def show_room(show_id: int) -> str:
    return f"show:{show_id}"


def host_room(show_id: int) -> str:
    return f"host:{show_id}"


def user_room(user_id: int) -> str:
    return f"u:{user_id}"


def coview_room(coview_id: int) -> str:
    return f"cv:{coview_id}"


def coview_owner_room(coview_id: int) -> str:
    return f"cvo:{coview_id}"


def viewers_key(show_id: int) -> str:
    return f"v:{show_id}"


def coview_key(coview_id: int) -> str:
    return f"c:{coview_id}"


@dataclass(slots=True)
class Conn:
    """One connected socket: which show, who, and in which co-view room."""

    sid: str
    show_id: int
    author: Author | None  # None: anonymous
    is_host: bool  # the show's host or an admin
    viewer_key: str
    coview_id: int | None = None
    coview_owner: bool = False
    last_id: int | None = None  # the last chat id the client saw (reconnects)
    taps: TapLimit = field(default_factory=TapLimit)
    address: str = ""  # the client's address key (rooms/admission.py)

    @property
    def user_id(self) -> int | None:
        return self.author.id if self.author else None


@dataclass(slots=True)
class ShowInfo:
    """What the hot path needs about a show without a database read."""

    host_id: int
    slow_mode: int


class SocketEvents:
    """`ShowEvents` over the rooms: to every viewer of a show, or every socket of a user,
    in this process and through the bus in all others."""

    def __init__(self, rooms: Rooms) -> None:
        self._rooms = rooms

    async def to_show(self, show_id: int, event: str, data: dict[str, Any]) -> None:
        self._rooms.broadcaster.emit(show_room(show_id), event, data)

    async def to_user(self, user_id: int, event: str, data: dict[str, Any]) -> None:
        self._rooms.broadcaster.emit(user_room(user_id), event, data)


class Rooms:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process_id = f"{settings.node_name}:{secrets.token_hex(4)}"
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            # None: same origin only (python-socketio compares Origin with Host).
            cors_allowed_origins=list(settings.socketio_origins) or None,
            max_http_buffer_size=settings.socketio_max_bytes,
            logger=False,
            engineio_logger=False,
        )
        eio = self.sio.eio
        engineio_hooks.use_frame_websocket(eio)  # the broadcaster's direct frame writes
        # nginx routes polling requests and the upgrade by this prefix (deploy/nginx).
        engineio_hooks.prefix_session_ids(eio, f"{settings.node_name}.")
        self.broadcaster = Broadcaster(settings.room_batch_window, on_slow=self._drop_slow)
        self.events = SocketEvents(self)
        self.reactions = Reactions()
        # Per client address (rooms/admission.py): Engine.IO sessions, joined sockets,
        # anonymous viewer keys and the reaction budget.
        self.sessions = AddressCounts(2 * settings.sockets_per_address)
        self.sockets = AddressCounts(settings.sockets_per_address)
        self.anonymous = AnonymousKeys(settings.secret, settings.anonymous_viewers_per_address, self.process_id)
        self.tap_budget = TapBudget(settings.reactions_per_address)
        self.gate = EngineGate(eio, self.sessions)
        engineio_hooks.observe_sessions(eio, self._session_opened, self._session_closed)
        engineio_hooks.drop_malformed_packets(self.sio, lambda: self.refusals.update(("malformed_packet",)))
        self._sid_of_session: dict[str, str] = {}  # Engine.IO sid -> Socket.IO sid, while joining or joined
        self._session_of_sid: dict[str, str] = {}
        self.conns: dict[str, Conn] = {}
        self.shows: dict[int, ShowInfo] = {}
        self.names: dict[int, str] = {}
        self.chat_messages = 0
        # Refused client events and connections by error code (a fixed set: /metrics labels).
        self.refusals: Counter[str] = Counter()
        self.connect_refusals: Counter[str] = Counter()
        # Set at start-up (they need the database and Redis).
        self.db: Database | None = None
        self.presence = Presence(MemoryStore(), settings.presence_timeout)
        self.limits: Limits = MemoryLimits(settings.chat_rate_count, settings.chat_rate_window)
        self.writer: ChatWriter | None = None
        self.ledger: AudienceLedger | None = None
        self.join_state: JoinState | None = None
        self.draining = False
        self._coview_seen: dict[int, list[str]] = {}
        self._tasks: list[asyncio.Task] = []
        self._side_tasks: set[asyncio.Task] = set()
        self._bus_ready: asyncio.Event | None = None

    # --- lifecycle ----------------------------------------------------------------

    async def start(self, db: Database, redis: aioredis.Redis | None) -> None:
        self.db = db
        self.writer = ChatWriter(db)
        self.ledger = AudienceLedger(db)
        self.join_state = JoinState(db)
        self.broadcaster.on_deliver = self._delivered
        if redis is not None:
            self.presence = Presence(RedisStore(redis), self.settings.presence_timeout)
            self.limits = RedisLimits(redis, self.settings.chat_rate_count, self.settings.chat_rate_window)
            bus = RedisBus(redis, self.process_id, self._from_bus)
            self._bus_ready = bus.subscribed
        else:
            bus = LocalBus()
        self.broadcaster.bus = bus
        for work in (self.writer.run(), bus.run(), self._presence_loop(), self._reactions_loop()):
            self._tasks.append(asyncio.create_task(work, name=work.__qualname__))
        if self._bus_ready is not None:
            # Do not accept sockets before this process hears the others.
            try:
                await asyncio.wait_for(self._bus_ready.wait(), timeout=10)
            except TimeoutError:
                log.warning("room bus not subscribed yet; continuing")

    async def stop(self) -> None:
        await self.disconnect_all()
        await self.sio.shutdown()  # stops Engine.IO's ping-monitor task
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # A task that swallows its cancellation (a library catching it on our behalf)
            # must not hold the shutdown: it is named in the log and left behind.
            _, stuck = await asyncio.wait(self._tasks, timeout=2.0)
            for task in stuck:
                log.error("room task %s did not stop when cancelled", task.get_name())
        self._tasks.clear()
        try:
            await self.presence.close()
            if self.ledger is not None:
                await self.ledger.flush({})
        except Exception as exc:  # noqa: BLE001 - shutting down anyway
            log.warning("presence not withdrawn at shutdown: %s", type(exc).__name__)

    async def disconnect_all(self, grace: float = 5.0) -> None:
        """Drain hook and shutdown: drop every connection so its client reconnects, to
        another node behind the balancer (this one now refuses new sockets).

        The transport is closed rather than the Socket.IO session: after a Socket.IO
        DISCONNECT (or an Engine.IO CLOSE) clients treat the end as deliberate and do not
        reconnect; after a closed WebSocket they do. Whatever is still open after `grace`
        is cut, so a graceful shutdown never waits on a client.
        """
        self.draining = True
        sockets = list(self.sio.eio.sockets.values())
        if not sockets:
            return
        closing = [asyncio.create_task(self._close_transport(sock)) for sock in sockets]
        _, late = await asyncio.wait(closing, timeout=grace)
        for task in late:
            task.cancel()
        for sock in sockets:
            ws = getattr(sock, WS_ATTR, None)
            transport = engineio_hooks.websocket_transport(ws)
            if transport is not None and not transport.is_closing():
                transport.abort()

    async def _close_transport(self, sock: Any) -> None:
        ws = getattr(sock, WS_ATTR, None)
        try:
            if ws is not None:
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"node draining")
            else:
                # Long-polling: end the session; the client's next poll fails and it reconnects.
                await sock.close(wait=False, abort=True)
                sock.queue.put_nowait(None)
        except Exception:  # noqa: BLE001 - cut below if still open
            log.debug("closing %s failed", sock.sid, exc_info=True)

    def stats(self) -> dict[str, float | Labelled]:
        """Read by /metrics at scrape time (`livemall_rooms_…`)."""
        s = self.broadcaster.stats
        return {
            "sockets": len(self.conns),
            "chat_in_total": self.chat_messages,
            "deliveries_total": s.deliveries,
            "refusals_total": Labelled("reason", dict(self.refusals)),
            "connect_refusals_total": Labelled("reason", dict(self.connect_refusals)),
            "engineio_sessions": len(self.sessions),
            "engineio_refusals_total": Labelled("reason", dict(self.gate.refused)),
            "flushes_total": s.flushes,
            "events_total": s.events,
            "direct_writes_total": s.direct_writes,
            "queued_writes_total": s.queued_writes,
            "slow_consumers_total": s.slow_consumers,
        }

    # --- connections --------------------------------------------------------------

    def eio_socket(self, sid: str) -> Any:
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        return self.sio.eio.sockets.get(eio_sid)

    def _session_opened(self, eio_sid: str, environ: dict) -> bool:
        # The gate refused handshakes over the cap; this counts the ones it let through
        # (and refuses any that raced past it).
        return self.sessions.claim(eio_sid, request_address(environ))

    async def _session_closed(self, eio_sid: str) -> None:
        self.sessions.release(eio_sid)
        sid = self._sid_of_session.pop(eio_sid, None)
        if sid is not None:
            self._session_of_sid.pop(sid, None)
            # A socket that left mid-join is never reported to Socket.IO's disconnect
            # handler; whatever it was counted in is withdrawn here.
            await self.unregister(sid)

    def claim_socket(self, sid: str, address: str) -> bool:
        """Take one of the address's socket places for `sid`; False when none is left."""
        if not self.sockets.claim(sid, address):
            return False
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:
            self._sid_of_session[eio_sid] = sid
            self._session_of_sid[sid] = eio_sid
        return True

    def end_session_soon(self, sid: str) -> None:
        """Close a refused socket's Engine.IO session once its refusal is on its way, so
        a client that ignores the refusal does not keep holding a session."""
        sock = self.eio_socket(sid)
        if sock is None:
            return
        task = asyncio.create_task(engineio_hooks.close_after_refusal(sock))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def viewer_key(self, sid: str, user_id: int | None, address: str) -> str:
        """Signed-in: the user (all their tabs count once). Anonymous: one of a few keys
        per address (rooms/admission.py), so a flood from one address is not thousands."""
        if user_id is not None:
            return f"u{user_id}"
        return self.anonymous.take(sid, address)

    async def register(self, conn: Conn, sock: Any) -> None:
        """Put a socket into its rooms (held back until it has its state) and count it.

        Everything that counts the socket is done before the first await: a disconnect
        arriving meanwhile then finds it all and withdraws it all (unregister).
        """
        self.conns[conn.sid] = conn
        b = self.broadcaster
        b.add(conn.sid, sock)
        b.join(conn.sid, show_room(conn.show_id))
        if conn.author is not None:
            b.join(conn.sid, user_room(conn.author.id))
            self.names[conn.author.id] = conn.author.name
        if conn.is_host:
            b.join(conn.sid, host_room(conn.show_id))
        entered: list[tuple[str, str]] = []
        if conn.coview_id is not None:
            b.join(conn.sid, coview_room(conn.coview_id))
            if conn.coview_owner:
                b.join(conn.sid, coview_owner_room(conn.coview_id))
            if self.presence.enter_local(coview_key(conn.coview_id), str(conn.user_id)):
                entered.append((coview_key(conn.coview_id), str(conn.user_id)))
            # The next presence tick sends the list again, so a second tab (whose user
            # changes nothing in it) gets it too.
            self._coview_seen.pop(conn.coview_id, None)
        if self.presence.enter_local(viewers_key(conn.show_id), conn.viewer_key):
            entered.append((viewers_key(conn.show_id), conn.viewer_key))
            if self.ledger is not None:
                self.ledger.saw(conn.show_id, conn.viewer_key, conn.user_id)
        for key, member in entered:
            await self.presence.publish(key, member)

    def release_socket(self, sid: str) -> None:
        """Give back what admission took for `sid` (its address place, its anonymous key)."""
        self.sockets.release(sid)
        self.anonymous.give_back(sid)
        eio_sid = self._session_of_sid.pop(sid, None)
        if eio_sid is not None:
            self._sid_of_session.pop(eio_sid, None)

    async def unregister(self, sid: str) -> None:
        """Withdraw a socket; safe to call more than once (Socket.IO's disconnect and the
        end of its Engine.IO session both call it)."""
        conn = self.conns.pop(sid, None)
        self.broadcaster.remove(sid)
        self.release_socket(sid)
        if conn is None:
            return
        await self.presence.leave(viewers_key(conn.show_id), conn.viewer_key)
        if conn.coview_id is not None:
            await self.presence.leave(coview_key(conn.coview_id), str(conn.user_id))

    def _drop_slow(self, sid: str) -> None:
        task = asyncio.create_task(self.sio.disconnect(sid))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # --- shows the hot path asks about -------------------------------------------

    def remember_show(self, show_id: int, host_id: int, slow_mode: int) -> None:
        self.shows[show_id] = ShowInfo(host_id, slow_mode)

    def set_slow_mode(self, show_id: int, seconds: int) -> None:
        """Record a slow-mode change here and tell the other processes."""
        info = self.shows.get(show_id)
        if info is not None:
            info.slow_mode = seconds
        self.broadcaster.bus.publish("!slow_mode", f"[{show_id},{seconds}]")

    def role_changed(self, user_id: int, role: Role) -> None:
        """An account's role changed: its open sockets that no longer hold the host's
        powers leave the host rooms here and in every other process, so a demoted host
        stops receiving questions at once, not at their next host action (issue 14,
        item 8; host actions themselves re-read the role each time, see still_host)."""
        self._apply_role(user_id, role)
        self.broadcaster.bus.publish("!role", json.dumps([user_id, role.value]))
        # After the control line in the same bus message: a socket told is already out.
        self.broadcaster.emit(user_room(user_id), "role", {"role": role.value})

    def _apply_role(self, user_id: int, role: Role) -> None:
        for conn in list(self.conns.values()):
            if not conn.is_host or conn.author is None or conn.author.id != user_id:
                continue
            info = self.shows.get(conn.show_id)
            if info is None or holds_host_role(role, user_id, info.host_id):
                continue  # unknown show: its next host action decides (still_host)
            conn.is_host = False
            self.broadcaster.leave(conn.sid, host_room(conn.show_id))

    def _delivered(self, room: str, frag: str) -> None:
        if room.startswith("show:") and not frag.startswith(STATELESS) and self.join_state is not None:
            self.join_state.changed(int(room[5:]))

    def viewers_now(self, show_id: int) -> int:
        """The last total across processes, and at least this process's own viewers."""
        key = viewers_key(show_id)
        return max(self.presence.total(key), len(self.presence.local_members(key)))

    def _from_bus(self, room: str, frag: str) -> None:
        if room.startswith("!"):
            if room == "!slow_mode":
                show_id, seconds = (int(x) for x in frag.strip("[]").split(","))
                info = self.shows.get(show_id)
                if info is not None:
                    info.slow_mode = seconds
            elif room == "!role":
                user_id, role = json.loads(frag)
                self._apply_role(int(user_id), Role(role))
            return
        self.broadcaster.deliver(room, frag)

    # --- background ---------------------------------------------------------------

    async def _presence_loop(self) -> None:
        while True:
            raise_if_cancelled()  # a Redis call may have swallowed the cancel (web/cancellation.py)
            await asyncio.sleep(PRESENCE_INTERVAL)
            try:
                await self.presence_tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - next tick retries
                log.warning("presence refresh failed: %s", type(exc).__name__)

    async def presence_tick(self) -> None:
        changed = await self.presence.refresh()
        peaks: dict[int, int] = {}
        for key, count in changed.items():
            if key.startswith("v:"):
                show_id = int(key[2:])
                peaks[show_id] = count
                # Every process computes the same total and tells only its own sockets.
                self.broadcaster.emit(show_room(show_id), "viewers", {"count": count}, publish=False)
        if self.ledger is not None:
            await self.ledger.flush(peaks)
        await self._coview_members()

    async def _coview_members(self) -> None:
        """Tell each co-view room who is present (the owner and the invited buyers
        alike), when it changes or someone (another tab too) has joined since."""
        rooms = {c.coview_id for c in self.conns.values() if c.coview_id is not None}
        for coview_id in list(self._coview_seen):
            if coview_id not in rooms:
                del self._coview_seen[coview_id]
        for coview_id in rooms:
            present = sorted(await self.presence.present(coview_key(coview_id)), key=int)
            if self._coview_seen.get(coview_id) == present:
                continue
            self._coview_seen[coview_id] = present
            await self.send_coview_members(coview_id, present)

    async def send_coview_members(self, coview_id: int, present: list[str]) -> None:
        ids = [int(p) for p in present]
        unknown = [i for i in ids if i not in self.names]
        if unknown and self.db is not None:
            async with self.db.session() as session:
                for user_id, name in await session.execute(select(User.id, User.name).where(User.id.in_(unknown))):
                    self.names[user_id] = name
        members = [{"id": i, "name": self.names.get(i, "")} for i in ids]
        # Every process computes the same list and tells only its own sockets.
        self.broadcaster.emit(
            coview_room(coview_id), "coview_members", {"members": members, "count": len(members)}, publish=False
        )

    async def _reactions_loop(self) -> None:
        while True:
            await asyncio.sleep(reactions_mod.INTERVAL)
            for show_id, counts in self.reactions.drain().items():
                self.broadcaster.emit(show_room(show_id), "reactions", {"counts": counts})


ROOMS = web.AppKey("rooms", Rooms)


def setup(app: web.Application) -> None:
    """Attach Socket.IO at /socket.io/, install the room events and viewer counts,
    the co-view API and the background tasks."""
    from rooms import events
    from web import api_coview

    rooms = Rooms(app[SETTINGS])
    app[ROOMS] = rooms
    # What Socket.IO's attach() would add, through the admission gate (rooms/admission.py).
    for method in ("GET", "POST", "OPTIONS"):
        app.router.add_route(method, "/socket.io/", rooms.gate.handle)
    events.register(rooms, tokens=app[TOKENS])
    from rooms import selling; selling.register(rooms, app)  # LIVE SELLING: flash deals, auctions
    from rooms import vouchers; vouchers.register(rooms, app)  # VOUCHERS: pinned in the show, claimed by viewers
    app[EVENTS] = rooms.events
    app[VIEWER_COUNT] = rooms.viewers_now
    app[DRAIN].hooks.append(rooms.disconnect_all)
    app.router.add_routes(api_coview.routes)
    register_stats("livemall_rooms", rooms.stats)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await rooms.start(app[DB], app[REDIS])
        yield
        await rooms.stop()

    async def close_sockets(app: web.Application) -> None:
        # on_shutdown runs before aiohttp waits for open handlers: without this every
        # WebSocket would hold the shutdown for its whole timeout.
        await rooms.disconnect_all(grace=min(5.0, app[SETTINGS].shutdown_grace / 2))

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(close_sockets)
