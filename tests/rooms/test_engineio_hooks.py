"""The tripwire for rooms/engineio_hooks.py: each internal of python-engineio,
python-socketio and aiohttp that the rooms reach is still where, and what, the hooks
rely on. A release that moves one fails here by name, before the flood tests or the
broadcaster's writes fail in ways that are harder to read."""

from __future__ import annotations

import inspect

import aiohttp
import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp

from rooms import engineio_hooks
from tests.conftest import free_port


def test_the_servers_driver_table_names_the_websocket_class_and_it_is_replaced():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    eio = sio.eio
    assert isinstance(eio._async, dict) and eio._async["websocket"] is eio_aiohttp.WebSocket

    engineio_hooks.use_frame_websocket(eio)

    assert eio._async["websocket"] is engineio_hooks.FrameWebSocket
    assert inspect.signature(eio_aiohttp.WebSocket.__init__).parameters.keys() >= {"handler", "server"}


def test_every_session_id_comes_from_generate_id_and_takes_the_prefix():
    eio = socketio.AsyncServer(async_mode="aiohttp").eio
    engineio_hooks.prefix_session_ids(eio, "n7.")
    assert eio.generate_id().startswith("n7.")
    assert "generate_id" in inspect.getsource(type(eio)._handle_connect)  # how sessions get their id


def test_socketio_registers_the_connect_and_disconnect_handlers_the_observer_wraps():
    eio = socketio.AsyncServer(async_mode="aiohttp").eio
    assert callable(eio.handlers["connect"]) and callable(eio.handlers["disconnect"])


async def test_an_open_websocket_exposes_its_transport_and_flow_control():
    seen: dict[str, object] = {}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        transport = engineio_hooks.websocket_transport(ws)
        seen["transport"] = transport
        seen["paused"] = engineio_hooks.writing_paused(ws)
        transport.write(b"\x81\x05hello")  # a frame written straight to the transport arrives as one message
        await ws.receive()
        await ws.close()
        after = engineio_hooks.websocket_transport(ws)
        seen["closed"] = after is None or after.is_closing()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
            message = await ws.receive()
            await ws.send_str("bye")
            await ws.receive()
    finally:
        await runner.cleanup()

    assert message.type is aiohttp.WSMsgType.TEXT and message.data == "hello"
    assert seen["transport"] is not None and seen["paused"] is False
    assert seen["closed"] is True  # callers check is_closing() before writing


def test_a_message_packet_encodes_as_the_broadcaster_frames_it():
    # rooms/batching.py frames "4" + the Socket.IO text itself, once for every socket.
    assert eio_packet.Packet(eio_packet.MESSAGE, "2[\"chat\",{}]").encode() == "42[\"chat\",{}]"
