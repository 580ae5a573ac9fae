"""Issue 14, item 1: one client opened thousands of Socket.IO connections to a show; all
were accepted, each join queried the database (the pool ran dry), and sockets that left
mid-join stayed counted as viewers for good.

The tests connect through the loopback address, a trusted proxy by default, and name
the client in X-Forwarded-For as nginx would."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event

from rooms.server import ROOMS, viewers_key
from tests.rooms.conftest import BUYER, SHOW
from web.appkeys import DB

FLOODER = "203.0.113.7"


def from_address(address: str) -> dict[str, Any]:
    return {"headers": {"X-Forwarded-For": address}}


async def flood(server, address: str, sockets: int) -> tuple[int, list[Any]]:
    """Open `sockets` anonymous connections from `address`: (accepted, refusals)."""
    accepted, refusals = 0, []
    for _ in range(sockets):
        viewer = server.viewer()
        try:
            await viewer.connect({"show": SHOW}, **from_address(address))
            accepted += 1
        except Exception:  # noqa: BLE001 - a refused connect raises; its reason is kept
            refusals.append(viewer.refused)
    return accepted, refusals


async def test_one_address_gets_at_most_its_share_of_sockets(start):
    server = await start(sockets_per_address=5)

    accepted, refusals = await flood(server, FLOODER, 30)

    assert accepted == 5
    assert len(refusals) == 25
    assert {r["data"]["error"] for r in refusals} == {"too_many_connections"}


async def test_another_address_still_joins_during_a_flood(start):
    server = await start(sockets_per_address=5)
    await flood(server, FLOODER, 30)

    viewer = await server.viewer().connect({"show": SHOW}, **from_address("198.51.100.9"))

    assert viewer.seen("state")


async def test_addresses_of_one_ipv6_64_share_one_share(start):
    server = await start(sockets_per_address=5)

    accepted = 0
    for i in range(1, 13):
        got, _ = await flood(server, f"2001:db8:0:1::{i:x}", 1)
        accepted += got

    assert accepted == 5


async def test_a_closed_socket_gives_its_place_back(start):
    server = await start(sockets_per_address=2)
    first = await server.viewer().connect({"show": SHOW}, **from_address(FLOODER))
    await server.viewer().connect({"show": SHOW}, **from_address(FLOODER))
    await first.close()

    # The place is free once the server has seen the close (it may take a moment).
    for _ in range(50):
        got, _ = await flood(server, FLOODER, 1)
        if got:
            break
    assert got == 1


async def test_engine_io_sessions_that_never_join_are_capped(start):
    server = await start(sockets_per_address=3)
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(12):
            async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling",
                                headers={"X-Forwarded-For": FLOODER}) as response:
                statuses.append((response.status, (await response.json()) if response.status == 429 else None))

    assert [s for s, _ in statuses].count(200) == 6  # 2 x the socket share (room for reconnects)
    assert all(body["error"] == "too_many_connections" for s, body in statuses if s == 429)


async def test_anonymous_joins_make_no_database_query(start):
    server = await start()
    await server.join(None)  # the show's facts and state are read once here
    queries: list[str] = []
    engine = server.app[DB].engine.sync_engine
    listener = lambda conn, cursor, statement, *args: queries.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        for _ in range(10):
            await server.join(None)
    finally:
        event.remove(engine, "before_cursor_execute", listener)

    assert [q for q in queries if "show_viewers" not in q and "peak_viewers" not in q] == []


async def test_a_socket_that_leaves_mid_join_is_not_counted(server, monkeypatch):
    """The issue's 10 phantom viewers: a client that closes its session while the node
    is still admitting it (here over long-polling, whose closed session lingers in
    Engine.IO) was registered afterwards and never withdrawn."""
    import rooms.events

    entered, release, returned = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_get_show = rooms.events.get_show

    async def slow_get_show(session, show_id):
        entered.set()
        await release.wait()
        try:
            return await real_get_show(session, show_id)
        finally:
            returned.set()

    monkeypatch.setattr(rooms.events, "get_show", slow_get_show)
    token = await server.token(BUYER)
    polling = f"{server.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(polling) as response:
            text = await response.text()
        sid = text[text.index('"sid":"') + 7:].split('"', 1)[0]

        async def post(body: str) -> int:
            async with http.post(f"{polling}&sid={sid}", data=body) as response:
                return response.status

        # The POST carrying CONNECT is answered once the join is done; meanwhile the
        # client closes its session (an Engine.IO CLOSE), as a flooding client did.
        joining = asyncio.create_task(post('40{"show":%d,"token":"%s"}' % (SHOW, token)))
        await asyncio.wait_for(entered.wait(), 10)
        assert await post("1") == 200
        release.set()
        await asyncio.wait_for(returned.wait(), 10)
        assert await asyncio.wait_for(joining, 10) == 200

    watcher = await server.join(None)

    room_server = server.app[ROOMS]
    await watcher.next("viewers", lambda v: v["count"] == 1)
    assert list(room_server.conns) == [watcher.client.get_sid()]
    assert [m for m in room_server.presence.local_members(viewers_key(SHOW)) if m.startswith("u")] == []


@pytest.mark.parametrize("sockets", [8])
async def test_counts_return_to_zero_when_the_flood_leaves(start, sockets):
    server = await start(sockets_per_address=5)
    await flood(server, FLOODER, sockets)
    rooms = server.app[ROOMS]

    for viewer in server.viewers:
        await viewer.close()
    for _ in range(100):
        if not rooms.conns and not rooms.sessions and not rooms.sockets:
            break
        await asyncio.sleep(0.05)

    assert (len(rooms.conns), len(rooms.sessions), len(rooms.sockets)) == (0, 0, 0)
    assert rooms.presence.local_members(viewers_key(SHOW)) == []
