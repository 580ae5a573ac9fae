"""The web side of a publisher's hiccup: status, who may resume, ending, the room."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import bearer, login, test_settings
from tests.live.conftest import TestPublisher
from tests.live.test_http import SDP, SHOW, answer, show_status, until_status, whip


async def _connected(peer: TestPublisher) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while peer.pc.connectionState != "connected":
        assert asyncio.get_running_loop().time() < deadline, "the publisher never connected"
        await asyncio.sleep(0.05)


async def _go_live_then_drop(client, publisher, token: str) -> str:
    host = publisher()
    location = await answer(host, await whip(client, host, token))
    await until_status(client, "live")
    await _connected(host)
    await host.close()  # the tab crashed: no DELETE
    await until_status(client, "reconnecting")
    return location


@pytest.fixture
async def host_token(client) -> str:
    return await login(client, "host@livemall.example")


async def test_a_dropped_publisher_makes_the_show_reconnecting_and_the_host_resumes_it(
    client, host_token, publisher
):
    await _go_live_then_drop(client, publisher, host_token)

    again = publisher()
    response = await whip(client, again, host_token)
    location = await answer(again, response)

    assert location.startswith(f"/whip/{SHOW}/")
    await until_status(client, "live")


async def test_only_the_host_or_an_admin_may_resume_a_reconnecting_show(client, host_token, publisher):
    await _go_live_then_drop(client, publisher, host_token)
    buyer = await login(client, "buyer@livemall.example")

    response = await whip(client, publisher(), buyer)

    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"
    assert await show_status(client) == "reconnecting"
    admin = await login(client, "admin@livemall.example")
    admin_peer = publisher()
    await answer(admin_peer, await whip(client, admin_peer, admin))
    await until_status(client, "live")


async def test_the_end_button_ends_a_reconnecting_show(client, host_token, publisher):
    await _go_live_then_drop(client, publisher, host_token)
    buyer = await login(client, "buyer@livemall.example")

    refused = await client.post(f"/api/shows/{SHOW}/end", headers=bearer(buyer))
    ended = await client.post(f"/api/shows/{SHOW}/end", headers=bearer(host_token))
    again = await client.post(f"/api/shows/{SHOW}/end", headers=bearer(host_token))

    assert refused.status == 403
    assert ended.status == 200 and (await ended.json()) == {"status": "ended"}
    assert again.status == 409 and (await again.json())["error"] == "show_not_live"
    assert await show_status(client) == "ended"


async def test_a_show_whose_host_never_returns_ends_after_the_grace(aiohttp_client, demo_db, tmp_path, publisher):
    from web.app import create_app

    app = create_app(test_settings(demo_db, recordings_dir=tmp_path / "recordings", publisher_grace=1.0))
    client = await aiohttp_client(app)
    token = await login(client, "host@livemall.example")

    await _go_live_then_drop(client, publisher, token)

    await until_status(client, "ended")
    detail = await (await client.get(f"/api/shows/{SHOW}")).json()
    assert detail["recording"] == f"/recordings/{SHOW}"
    assert (await client.get(f"/recordings/{SHOW}")).status == 200


async def test_the_show_room_hears_reconnecting_then_live_again(demo_db, tmp_path, publisher):
    from tests.rooms.conftest import BUYER, HOST, start_server

    server = await start_server(demo_db, tmp_path)
    try:
        buyer = await server.join(BUYER)
        token = await server.token(HOST)
        async with aiohttp.ClientSession() as http:
            first = publisher()
            async with http.post(
                f"{server.url}/whip/{SHOW}", data=await first.offer(), headers={**SDP, **bearer(token)}
            ) as response:
                await answer(first, response)
            assert await buyer.next("show_status", lambda d: d["status"] == "live")
            await _connected(first)

            await first.close()
            assert await buyer.next("show_status", lambda d: d["status"] == "reconnecting")

            second = publisher()
            async with http.post(
                f"{server.url}/whip/{SHOW}", data=await second.offer(), headers={**SDP, **bearer(token)}
            ) as response:
                await answer(second, response)
            assert await buyer.next("show_status", lambda d: d["status"] == "live")
    finally:
        await server.close()
