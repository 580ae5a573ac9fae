"""Issue 14, item 2: a flood of anonymous sockets from one client made a show's audience
6,000 viewers (peak 3,000, 8,638 `show_viewers` rows). Reports count people: signed-in
users once, anonymous viewers at most `anonymous_viewers_per_address` per address."""

from __future__ import annotations

import aiohttp

from rooms.server import ROOMS
from tests.rooms.conftest import BUYER, HOST, SHOW, query

FLOODER = {"headers": {"X-Forwarded-For": "203.0.113.7"}}


async def test_a_flood_from_one_address_counts_as_a_few_viewers(start):
    server = await start(sockets_per_address=20, anonymous_viewers_per_address=2)
    buyer = await server.join(BUYER)
    for _ in range(10):
        await server.viewer().connect({"show": SHOW}, **FLOODER)

    assert await buyer.next("viewers", lambda v: v["count"] == 3)  # the buyer and 2 for the address
    await server.app[ROOMS].presence_tick()  # flushes the audience ledger now
    rows = await query(server, "SELECT viewer_key, user_id FROM show_viewers WHERE show_id = :s", s=SHOW)
    peak = await query(server, "SELECT peak_viewers FROM shows WHERE id = :s", s=SHOW)
    assert len(rows) == 3 and peak == [(3,)]
    assert not any("203.0.113.7" in key for key, _ in rows)  # no addresses kept


async def test_viewers_behind_different_addresses_all_count(start):
    server = await start(anonymous_viewers_per_address=1)
    buyer = await server.join(BUYER)
    for i in range(3):
        await server.viewer().connect({"show": SHOW}, headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})

    assert await buyer.next("viewers", lambda v: v["count"] == 4)


async def test_the_report_counts_people_and_says_how(start):
    server = await start(anonymous_viewers_per_address=2)
    await server.join(BUYER)
    for _ in range(6):
        await server.viewer().connect({"show": SHOW}, **FLOODER)
    await server.app[ROOMS].presence_tick()

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/reports/shows/{SHOW}",
                            headers={"Authorization": f"Bearer {await server.token(HOST)}"}) as response:
            assert response.status == 200, await response.text()
            viewers = (await response.json())["viewers"]

    assert (viewers["total"], viewers["signed_in"], viewers["anonymous"]) == (3, 1, 2)
    assert "per client address" in viewers["counted_as"]
