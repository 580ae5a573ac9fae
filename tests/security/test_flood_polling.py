"""Issue 14, item 5: an Engine.IO polling POST larger than the allowed payload got no
answer and held the connection 200 s. Now: 413 with the JSON error, the connection
closed, and the Engine.IO session ended."""

from __future__ import annotations

import asyncio

import aiohttp

from rooms.server import ROOMS

LIMIT = 1024


async def handshake(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/socket.io/?EIO=4&transport=polling") as response:
        assert response.status == 200
        text = await response.text()
    return text[text.index('"sid":"') + 7:].split('"', 1)[0]


async def test_an_oversized_polling_post_gets_413_and_its_session_ends(start):
    server = await start(socketio_max_bytes=LIMIT)
    async with aiohttp.ClientSession() as http:
        sid = await handshake(http, server.url)
        body = "4" + "x" * (LIMIT * 70)  # one 70 KB message packet

        async def post() -> tuple[int, dict, str]:
            async with http.post(f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=body,
                                 headers={"Content-Type": "text/plain;charset=UTF-8"}) as response:
                return response.status, await response.json(), response.headers.get("Connection", "")

        status, error, connection = await asyncio.wait_for(post(), 10)  # held 200 s before

        assert status == 413 and error["error"] == "payload_too_large"
        assert connection.lower() == "close"
        async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}") as response:
            assert response.status == 400  # the session is gone
    assert server.app[ROOMS].sessions.count("127.0.0.1") == 0


async def test_a_polling_post_within_the_limit_is_accepted(start):
    server = await start(socketio_max_bytes=LIMIT)
    async with aiohttp.ClientSession() as http:
        sid = await handshake(http, server.url)
        async with http.post(f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data="40",
                             headers={"Content-Type": "text/plain;charset=UTF-8"}) as response:
            assert response.status == 200
