"""Deeply nested JSON is refused quietly: a signed payment webhook of 100,000 '[' is a
422, not a 500 (RecursionError), and a Socket.IO packet nested past the parser's depth
is dropped without a traceback per packet, the socket staying usable (issue 14, item 17)."""

from __future__ import annotations

import json
import logging
import time

import aiohttp

from orders import payments
from tests.conftest import test_settings
from tests.rooms.conftest import BUYER, SHOW


async def test_a_signed_webhook_of_100000_brackets_is_422_not_500(aiohttp_client, demo_db, tmp_path):
    from web.app import create_app

    secret = "whsec-test"
    app = create_app(test_settings(demo_db, recordings_dir=tmp_path / "rec",
                                   payment_webhook_secret=secret, payment_sandbox=True))
    client = await aiohttp_client(app)
    body = b"[" * 100_000
    headers = {payments.SIGNATURE_HEADER: payments.sign(secret, body, int(time.time())),
               "Content-Type": "application/json"}
    response = await client.post("/api/payments/sandbox/webhook", data=body, headers=headers)
    assert response.status in (400, 422), await response.text()
    assert (await response.json())["error"] in ("invalid", "bad_request")


async def _engineio_socket(server, token: str | None = None) -> aiohttp.ClientWebSocketResponse:
    """A raw Engine.IO v4 WebSocket that has joined the demo show's namespace."""
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(f"{server.url}/socket.io/?EIO=4&transport=websocket")
    ws._livemall_http = http  # closed with the socket
    open_packet = await ws.receive_str()
    assert open_packet.startswith("0{")
    await ws.send_str("40" + json.dumps({"show": SHOW, **({"token": token} if token else {})}))
    while not (await ws.receive_str()).startswith("40"):
        pass
    return ws


async def _ack(ws, ack_id: int) -> list:
    """The ack packet `43<id>[...]` for `ack_id`, answering Engine.IO pings meanwhile."""
    while True:
        message = await ws.receive_str()
        if message == "2":
            await ws.send_str("3")
        elif message.startswith(f"43{ack_id}"):
            return json.loads(message[len(f"43{ack_id}"):])


async def test_a_deeply_nested_socketio_packet_is_dropped_without_a_traceback(server, caplog):
    ws = await _engineio_socket(server)
    try:
        with caplog.at_level(logging.DEBUG):
            for _ in range(3):
                await ws.send_str("42" + "[" * 50_000)  # under the 64 KB packet limit
            await ws.send_str('421["react",{"kind":"heart"}]')  # still answered afterwards
            reply = await _ack(ws, 1)
        assert isinstance(reply, list) and reply
        tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        assert tracebacks == [], [r.getMessage() for r in tracebacks]
    finally:
        await ws.close()
        await ws._livemall_http.close()


async def test_a_well_formed_but_deep_event_argument_is_refused_as_invalid(server, caplog):
    ws = await _engineio_socket(server, await server.token(BUYER))
    deep = "[" * 900 + "]" * 900  # parses (under the interpreter's recursion limit)
    try:
        with caplog.at_level(logging.DEBUG):
            await ws.send_str(f'427["chat",{{"text":{deep}}}]')
            reply = await _ack(ws, 7)
        assert reply[0]["ok"] is False and reply[0]["error"] == "invalid"
        tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        assert tracebacks == [], [r.getMessage() for r in tracebacks]
    finally:
        await ws.close()
        await ws._livemall_http.close()
