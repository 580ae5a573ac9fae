"""Every reach into python-engineio / python-socketio internals, and into aiohttp's
WebSocket writer, in one place (as live/aiortc_hooks.py does for aiortc): admission
control (session observers, closing, packet guards) and the broadcaster's direct frame
writes (the WebSocket class, session-id prefixes, the transport and its flow control).
Each hook says what it relies on; tests/rooms/test_engineio_hooks.py checks every one
against the installed releases, and tests/security/test_flood_sockets.py and
test_flood_polling.py trip if their behaviour changes. pyproject.toml pins the releases
with upper bounds.

Checked against python-engineio 4.15, python-socketio 5.18 and aiohttp 3.14.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.web import WebSocketResponse
from engineio import json as engineio_json
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import packet as socketio_packet

log = logging.getLogger(__name__)

SessionOpened = Callable[[str, dict], bool]  # (eio sid, environ) -> keep it?
SessionClosed = Callable[[str], Awaitable[None]]


def observe_sessions(eio: Any, opened: SessionOpened, closed: SessionClosed) -> None:
    """Call `opened` when an Engine.IO session is made and `closed` once it ends, for
    every session, whatever ended it (client close, ping timeout, a failed POST).

    Relies on: python-socketio registering its own ``connect`` and ``disconnect``
    handlers in ``eio.handlers`` (``BaseServer.__init__``), which we wrap so both still
    run; engineio calling ``connect`` once per session with ``(sid, environ)`` and
    treating a ``False`` return as a refusal (``AsyncServer._handle_connect``: 401,
    session deleted, no ``disconnect``); and ``disconnect`` with ``(sid, reason)`` from
    ``AsyncSocket.close`` exactly once per session.

    Why at this level: python-socketio calls its ``disconnect`` handler only for a
    socket that had finished its namespace ``connect``. A client that leaves while its
    join is still being admitted is never reported there; counted state built for it
    (presence, rooms) would stay forever (issue 14: 10 sockets counted for 30 minutes
    with no client). Engine.IO reports every session's end.
    """
    sio_connect = eio.handlers["connect"]
    sio_disconnect = eio.handlers["disconnect"]

    async def on_connect(sid: str, environ: dict) -> Any:
        if not opened(sid, environ):
            return False
        ret = await sio_connect(sid, environ)
        return ret

    async def on_disconnect(sid: str, reason: Any = None) -> None:
        try:
            await sio_disconnect(sid, reason)
        finally:
            await closed(sid)

    eio.handlers["connect"] = on_connect
    eio.handlers["disconnect"] = on_disconnect


async def close_session(sock: Any) -> None:
    """End an Engine.IO session now, without waiting for its client.

    Relies on: ``AsyncSocket.close(wait=False, abort=True)`` firing ``disconnect`` and
    marking the socket closed without queueing a CLOSE packet, and a long-poll GET
    waiting in ``queue.get()`` ending on a ``None`` item (``AsyncSocket.poll``).
    ``AsyncServer.disconnect`` would instead wait on ``queue.join()``, which for a
    polling client that never polls again is forever: that held an oversized POST
    200 s (issue 14, item 5).
    """
    try:
        await sock.close(wait=False, abort=True)
    except Exception:  # noqa: BLE001 - closing anyway
        log.debug("closing Engine.IO session %s failed", getattr(sock, "sid", "?"), exc_info=True)
    if not sock.upgraded:
        sock.queue.put_nowait(None)


async def close_after_refusal(sock: Any) -> None:
    """Close a session whose Socket.IO connect was just refused, after the refusal.

    Relies on: python-socketio queueing CONNECT_ERROR right after the connect handler
    raises, with no await that yields in between (``AsyncServer._handle_connect`` ->
    ``_send_packet`` -> ``AsyncSocket.send`` -> ``queue.put`` on an unbounded queue), so
    a task started in the handler runs after it is queued; and ``close(wait=False)``
    queueing CLOSE behind it. Clients treat CONNECT_ERROR as final and close anyway.
    """
    await asyncio.sleep(0)
    try:
        await sock.close(wait=False)
    except Exception:  # noqa: BLE001 - already gone
        log.debug("closing refused session %s failed", getattr(sock, "sid", "?"), exc_info=True)


def session_of(eio: Any, sid: str | None) -> Any:
    """The Engine.IO socket of a session id, or None. Relies on ``eio.sockets``."""
    return eio.sockets.get(sid) if sid else None


def max_payload(eio: Any) -> int:
    """Relies on ``BaseServer.max_http_buffer_size`` (what the handshake announces as maxPayload)."""
    return int(eio.max_http_buffer_size)


class MalformedPacket(ValueError):
    """A Socket.IO packet whose JSON does not parse, or nests past the parser's depth."""


class _GuardedJson:
    """engineio's JSON module (it bounds integer literals), with every parse failure,
    RecursionError included, raised as MalformedPacket."""

    dumps = staticmethod(engineio_json.dumps)

    @staticmethod
    def loads(*args: Any, **kwargs: Any) -> Any:
        try:
            return engineio_json.loads(*args, **kwargs)
        except RecursionError:  # json's C scanner at the interpreter's recursion limit: "[[[[…"
            raise MalformedPacket("nested too deeply") from None
        except ValueError as exc:
            raise MalformedPacket(str(exc)) from None


class _GuardedPacket(socketio_packet.Packet):
    json = _GuardedJson


def drop_malformed_packets(sio: Any, dropped: Callable[[], None]) -> None:
    """Drop a client packet whose JSON does not parse (a deeply nested one included)
    quietly: `dropped()` counts it, a debug line names the session, the socket stays.
    Unguarded, each such packet logged a traceback ("message async handler error") and
    a RecursionError (issue 14, item 17).

    Relies on: python-socketio decoding a client packet as ``self.packet_class(
    encoded_packet=…)`` inside ``_handle_eio_message``, which it registers as
    ``eio.handlers["message"]`` (``BaseServer.__init__``), and on ``Packet.decode``
    parsing with ``self.json.loads``; a per-server ``packet_class`` (rather than the
    ``json=`` argument, which sets it on the shared class) leaves other servers and
    clients in the process alone. Only MalformedPacket is caught: an error from a
    connect handler (which runs inline) still surfaces.
    """
    sio.packet_class = _GuardedPacket
    handle = sio.eio.handlers["message"]

    async def on_message(sid: str, data: Any) -> None:
        try:
            await handle(sid, data)
        except MalformedPacket as exc:
            dropped()
            log.debug("dropped a malformed packet from %s: %s", sid, exc)

    sio.eio.handlers["message"] = on_message


# --- the WebSocket transport: pre-built frames written straight to each socket ----------

WS_ATTR = "livemall_ws"  # set on an Engine.IO socket while its WebSocket is open


class FrameWebSocket(eio_aiohttp.WebSocket):
    """Engine.IO's aiohttp WebSocket without compression, exposing the response so the
    broadcaster (rooms/batching.py) can write pre-built frames to it.

    Relies on: engineio's aiohttp driver instantiating ``_async["websocket"]`` with
    ``(handler, server)`` per upgrade and calling it with the WSGI-like ``environ``
    holding ``aiohttp.request``; ``handler`` being the bound ``AsyncSocket._websocket_handler``
    (its ``__self__`` is the Engine.IO socket); ``self._sock`` being what the base
    class's ``close``/``send``/``wait`` use."""

    async def __call__(self, environ: dict) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await self._sock.prepare(request)
        self.environ = environ
        eio_socket = getattr(self.handler, "__self__", None)
        if eio_socket is not None:
            setattr(eio_socket, WS_ATTR, self._sock)
        try:
            await self.handler(self)
        finally:
            if eio_socket is not None:
                setattr(eio_socket, WS_ATTR, None)
        return self._sock


def use_frame_websocket(eio: Any) -> None:
    """Relies on: ``AsyncServer._async`` (the driver's table, a dict) naming the class
    engineio makes per WebSocket upgrade under ``"websocket"``."""
    eio._async = {**eio._async, "websocket": FrameWebSocket}


def prefix_session_ids(eio: Any, prefix: str) -> None:
    """Every Engine.IO session id starts with ``prefix`` (nginx routes a session's
    polling requests and its upgrade back to its node by it: deploy/nginx).

    Relies on: ``AsyncServer.generate_id()`` making every session id."""
    generate = eio.generate_id
    eio.generate_id = lambda: prefix + generate()


def websocket_transport(ws: WebSocketResponse | None) -> asyncio.Transport | None:
    """The TCP transport under an open WebSocket response, or None.

    Relies on: aiohttp's ``WebSocketResponse._writer`` (a ``WebSocketWriter``, set by
    ``prepare``) and its ``transport``, which is closing once the socket closed:
    check ``is_closing()`` before writing."""
    writer = ws._writer if ws is not None else None
    return writer.transport if writer is not None else None  # type: ignore[return-value]


def writing_paused(ws: WebSocketResponse) -> bool:
    """Whether the transport asked aiohttp to stop writing (its buffer is full): then
    the Engine.IO writer may be waiting to drain with packets in hand.

    Relies on: ``WebSocketWriter.protocol`` being aiohttp's ``BaseProtocol``, whose
    ``writing_paused`` follows ``pause_writing``/``resume_writing``."""
    writer = ws._writer
    return writer is None or bool(writer.protocol.writing_paused)
