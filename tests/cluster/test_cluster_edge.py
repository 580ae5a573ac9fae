"""Edge pulling through nginx: a cluster of its own whose nodes run with
LIVEMALL_EDGE_PULL=true, so nginx spreads WHEP POSTs over both nodes; the node without
the show pulls it from the origin once and serves its viewers itself."""

from __future__ import annotations

import os
import signal
from typing import Iterator

import av

import pytest
import redis

from tests.cluster.clients import HOST, Api, eventually, media_origin, play, publish
from tests.cluster.conftest import Cluster, run_cluster
from tests.cluster.test_cluster_media import _relay
from tests.cluster.test_node_loss import _alive
from tests.live.conftest import in_order_with_few_gaps, read_counter


@pytest.fixture(scope="module")
def edge_cluster(redis_url: str, pg_template, tmp_path_factory) -> Iterator[Cluster]:
    # A Redis database of its own: the session's cluster runs meanwhile with other show ids.
    url = redis_url.rsplit("/", 1)[0] + "/4"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield from run_cluster(url, pg_template, tmp_path_factory, LIVEMALL_EDGE_PULL="true")


@pytest.fixture
def edge_api(edge_cluster: Cluster, http) -> Api:
    return Api(http, edge_cluster.url)


def _node_of_session(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[1].split(".", 1)[0]  # /whep/{show}/n2.xyz -> n2


async def test_viewers_through_nginx_land_on_both_nodes_and_all_play(edge_api, edge_cluster, peers):
    token = await edge_api.login(HOST)
    show_id = await edge_api.new_show(token)
    _, whip_location = await publish(edge_api, show_id, token, peers)
    await eventually(lambda: _is_live(edge_api, show_id), 10, "the show marked live")
    origin_url = await eventually(lambda: media_origin(edge_cluster.redis, show_id), 10, "the show's origin")
    origin = edge_cluster.node_of(origin_url)

    viewers: list = []
    locations: list[str] = []
    names: list[str] = []  # the node serving each viewer
    while min(names.count("n1"), names.count("n2")) < 2:  # two viewers on each node
        assert len(viewers) < 10, f"nginx sent every WHEP to one node: {locations}"
        viewer, headers = await play(edge_api, show_id, peers)
        viewers.append(viewer)
        locations.append(headers["Location"])
        names.append(_node_of_session(headers["Location"]))
    for viewer in viewers:
        await viewer.frames(30)
        assert in_order_with_few_gaps(viewer.counters), viewer.counters

    at_origin = names.count(f"n{origin}")
    at_edge = len(names) - at_origin
    origin_relay = await _relay(edge_api, edge_cluster.node_url(origin))
    edge_relay = await _relay(edge_api, edge_cluster.node_url(3 - origin))
    assert origin_relay["livemall_relay_viewers"] == at_origin + 1  # the edge counts once
    assert edge_relay["livemall_relay_viewers"] == at_edge
    assert edge_relay["livemall_relay_edge_shows"] == 1

    # DELETE through nginx reaches the node named in the session id, edge or origin.
    leaving = [names.index("n1"), names.index("n2")]
    for i in leaving:
        status, _, _ = await edge_api.call("DELETE", locations[i])
        assert status == 200
    await eventually(lambda: _viewers_are(edge_api, edge_cluster, origin, at_origin, at_edge - 1), 10,
                     "one viewer fewer on each node")

    # The host ends the show: the viewers left on both nodes see it end.
    status, _, _ = await edge_api.call("DELETE", whip_location, token)
    assert status == 200
    for i, viewer in enumerate(viewers):
        if i not in leaving:
            await viewer.until(lambda v=viewer: "video" in v.ended)


async def _viewers_are(api: Api, cluster: Cluster, origin: int, on_origin: int, on_edge: int) -> bool:
    origin_viewers = (await _relay(api, cluster.node_url(origin)))["livemall_relay_viewers"]
    edge_viewers = (await _relay(api, cluster.node_url(3 - origin)))["livemall_relay_viewers"]
    return origin_viewers == on_origin and edge_viewers == on_edge


async def _is_live(api: Api, show_id: int) -> bool:
    return await api.show_status(show_id) == "live"


async def test_a_killed_origins_edge_viewers_stay_and_get_the_host_republishing_through_the_survivor(
    edge_api, edge_cluster, peers, tmp_path
):
    token = await edge_api.login(HOST)
    show_id = await edge_api.new_show(token)
    await publish(edge_api, show_id, token, peers)
    await eventually(lambda: _is_live(edge_api, show_id), 10, "the show marked live")
    origin_url = await eventually(lambda: media_origin(edge_cluster.redis, show_id), 10, "the show's origin")
    origin = edge_cluster.node_of(origin_url)
    survivor = edge_api.at(edge_cluster.node_url(3 - origin))
    viewer, headers = await play(survivor, show_id, peers)  # an edge viewer
    assert _node_of_session(headers["Location"]) == f"n{3 - origin}"
    await viewer.frames(60)  # two seconds: the origin's recording has written some of it

    pid = edge_cluster.pid(f"node{origin}")
    try:
        os.kill(pid, signal.SIGKILL)
        await eventually(lambda: not _alive(pid), 5, "the killed node gone")
        seen = len(viewer.counters)

        # The host publishes again through the survivor: accepted at the first try (the
        # dead origin refuses connections, so the survivor takes the show over at once).
        _, location = await publish(survivor, show_id, token, peers)

        # The same viewer, on the same connection, decodes the new publisher's frames.
        await viewer.frames(seen + 20, timeout=20)
        assert "video" not in viewer.ended
        assert await media_origin(edge_cluster.redis, show_id) == edge_cluster.node_url(3 - origin)
        await eventually(lambda: _is_live(edge_api, show_id), 10, "the show live again")
        relay = await _relay(edge_api, edge_cluster.node_url(3 - origin))
        assert relay["livemall_relay_shows_taken_over_total"] == 1

        # The host ends the show: its replay holds both parts, the dead origin's and the
        # survivor's, in one file (the second publisher's counter starts again at 0).
        await survivor.ok("DELETE", location, token)
        await eventually(lambda: _is_ended(edge_api, show_id), 15, "the show ended")
        async with edge_api.http.get(f"{edge_cluster.url}/recordings/{show_id}") as response:
            assert response.status == 200
            recording = await response.read()
        counters = _counters(recording, tmp_path)
        restarts = [i for i in range(1, len(counters)) if counters[i] < counters[i - 1]]
        assert len(restarts) == 1 and restarts[0] >= 10 and len(counters) - restarts[0] >= 20, counters
    finally:
        edge_cluster.ensure_running()


async def _is_ended(api: Api, show_id: int) -> bool:
    return await api.show_status(show_id) == "ended"


def _counters(recording: bytes, tmp_path) -> list[int]:
    path = tmp_path / "replay.webm"
    path.write_bytes(recording)
    with av.open(str(path)) as container:
        return [read_counter(frame) for frame in container.decode(video=0)]
