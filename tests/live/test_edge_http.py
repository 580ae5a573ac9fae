"""Edge pulling over HTTP: two real apps (nodes n1 and n2) sharing a database and a real
redis-server, real aiortc peers. The host publishes on n1; viewers POST their WHEP offer
to n2, which pulls the show from n1 once and answers them itself."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from tests.conftest import bearer, free_port, login, test_settings
from tests.live.conftest import TestViewer, in_order_with_few_gaps
from tests.live.test_http import SDP, SHOW, answer, until_status, whip
from web.media import HUB


@pytest.fixture
async def nodes(aiohttp_server, aiohttp_client, demo_db, redis_url, tmp_path):
    """(n1, n2): test clients of two nodes with edge pulling on."""
    from web.app import create_app

    # A Redis database of these tests' own, so no origin claim of another test remains.
    url = redis_url.rsplit("/", 1)[0] + "/5"
    redis = aioredis.from_url(url)
    await redis.flushdb()
    await redis.aclose()
    clients = []
    for name in ("n1", "n2"):
        port = free_port()
        settings = test_settings(
            demo_db, redis=url, node_name=name, node_url=f"http://127.0.0.1:{port}",
            edge_pull=True, recordings_dir=tmp_path / name,
        )
        server = await aiohttp_server(create_app(settings), port=port)
        clients.append(await aiohttp_client(server))
    return clients


async def whep(client, watcher: TestViewer):
    return await client.post(f"/whep/{SHOW}", data=await watcher.offer(), headers=SDP)


async def test_viewer_on_another_node_is_served_by_that_node_pulling_the_show(nodes, publisher, viewer):
    n1, n2 = nodes
    host = publisher()
    await answer(host, await whip(n1, host, await login(n1, "host@livemall.example")))
    await until_status(n1, "live")

    watchers = [viewer(), viewer()]
    locations = [await answer(w, await whep(n2, w)) for w in watchers]
    await asyncio.gather(*(w.frames(30) for w in watchers))

    assert all(loc.startswith(f"/whep/{SHOW}/n2.") for loc in locations)  # served by n2
    for watcher in watchers:
        assert in_order_with_few_gaps(watcher.counters), watcher.counters
    assert n1.server.app[HUB].stats()["shows"][SHOW]["viewers"] == 1  # n2, once
    assert n2.server.app[HUB].stats()["shows"][SHOW]["viewers"] == 2

    response = await n2.delete(locations[0])
    assert response.status == 200
    assert n2.server.app[HUB].stats()["shows"][SHOW]["viewers"] == 1


async def test_concurrent_first_viewers_on_a_node_start_one_pull(nodes, publisher, viewer):
    n1, n2 = nodes
    host = publisher()
    await answer(host, await whip(n1, host, await login(n1, "host@livemall.example")))
    await until_status(n1, "live")

    watchers = [viewer() for _ in range(3)]
    responses = await asyncio.gather(*(whep(n2, w) for w in watchers))
    for watcher, response in zip(watchers, responses):
        await answer(watcher, response)
    await asyncio.gather(*(w.frames(5) for w in watchers))

    assert n2.server.app[HUB].stats()["edge_pulls_total"] == 1
    assert n1.server.app[HUB].stats()["shows"][SHOW]["viewers"] == 1


async def test_host_ending_the_show_ends_it_for_viewers_on_the_edge(nodes, publisher, viewer):
    n1, n2 = nodes
    token = await login(n1, "host@livemall.example")
    host = publisher()
    whip_location = await answer(host, await whip(n1, host, token))
    assert whip_location.startswith(f"/whip/{SHOW}/n1.")
    await until_status(n1, "live")
    watcher = viewer()
    await answer(watcher, await whep(n2, watcher))
    await watcher.frames(5)

    response = await n1.delete(whip_location, headers=bearer(token))
    assert response.status == 200

    await watcher.until(lambda: "video" in watcher.ended)
    await until_status(n2, "ended")
    late = viewer()
    assert (await whep(n2, late)).status == 409
