"""WHIP and WHEP through nginx on two nodes: publishing, playing, a request that lands on
the node without the show, playing through coturn, and the relay's metrics."""

from __future__ import annotations

import re

from aiortc import RTCIceServer
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.clients import Api, RelayOnlyViewer, eventually, media_origin, play, publish
from tests.live.conftest import in_order_with_few_gaps

LINK = re.compile(r'<(?P<url>[^>]+)>; rel="ice-server"(?P<params>.*)')


async def _live_show(api: Api, cluster, host_token: str, peers: list) -> tuple[int, int, str]:
    """A new show published through nginx: (show id, the node holding it, WHIP Location)."""
    show_id = await api.new_show(host_token)
    _, location = await publish(api, show_id, host_token, peers)
    await eventually(lambda: _is_live(api, show_id), 10, "the show marked live")
    origin = await eventually(lambda: media_origin(cluster.redis, show_id), 10, "the show's origin in Redis")
    return show_id, cluster.node_of(origin), location


async def _is_live(api: Api, show_id: int) -> bool:
    return await api.show_status(show_id) == "live"


async def _relay(api: Api, node_base: str) -> dict[str, float]:
    text = await api.at(node_base).ok("GET", "/metrics")
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("livemall_relay_")
    }


async def test_a_host_publishes_and_viewers_play_through_nginx(api, cluster, host_token, peers):
    show_id, _, location = await _live_show(api, cluster, host_token, peers)
    assert await api.show_status(show_id) == "live"

    viewers = [(await play(api, show_id, peers))[0] for _ in range(2)]
    for viewer in viewers:
        await viewer.frames(30)
        await viewer.until(lambda v=viewer: v.audio_frames >= 10)
        assert in_order_with_few_gaps(viewer.counters)

    status, _, _ = await api.call("DELETE", location, host_token)
    assert status == 200
    for viewer in viewers:
        await viewer.until(lambda v=viewer: "video" in v.ended)
    assert await api.show_status(show_id) == "ended"


async def test_whep_on_the_node_without_the_show_is_forwarded_to_its_origin(api, cluster, host_token, peers):
    show_id, origin, _ = await _live_show(api, cluster, host_token, peers)
    other = api.at(cluster.node_url(3 - origin))

    viewer, headers = await play(other, show_id, peers)  # 201, never 409 show_not_live
    await viewer.frames(30)
    assert in_order_with_few_gaps(viewer.counters)
    # The media comes from the origin: the SDP answer was the origin's.
    assert (await _relay(api, cluster.node_url(origin)))["livemall_relay_viewers"] == 1
    assert (await _relay(api, cluster.node_url(3 - origin)))["livemall_relay_viewers"] == 0

    status, _, _ = await other.call("DELETE", headers["Location"])  # forwarded too
    assert status == 200
    await viewer.until(lambda: "video" in viewer.ended)


async def test_a_viewer_limited_to_relay_candidates_plays_through_coturn(api, cluster, host_token, peers):
    show_id, _, _ = await _live_show(api, cluster, host_token, peers)
    body = await api.ok("GET", "/api/ice-servers")
    turn = next(s for s in body["ice_servers"] if s["urls"][0].startswith("turn:"))
    assert turn["username"].split(":")[0].isdigit()  # "<expiry>:<label>", coturn's REST scheme

    viewer = RelayOnlyViewer(RTCIceServer(turn["urls"], username=turn["username"], credential=turn["credential"]))
    viewer, headers = await play(api, show_id, peers, viewer)
    await viewer.frames(30)
    assert in_order_with_few_gaps(viewer.counters)
    assert viewer.selected_local_candidate_type() == "relay"

    # WHEP answers carry the same TURN server, with credentials of their own (RFC 9725).
    links = [LINK.match(value) for value in headers.getall("Link")]
    assert [m["url"] for m in links if m] == turn["urls"]
    params = links[0]["params"]
    assert 'credential-type="password"' in params and 'username="' in params
    assert f'username="{turn["username"]}"' not in params


async def test_relay_counters_move_while_a_show_plays(api, cluster, host_token, peers):
    show_id, origin, _ = await _live_show(api, cluster, host_token, peers)
    node = cluster.node_url(origin)
    viewer, _ = await play(api, show_id, peers)
    await viewer.frames(10)
    before = await _relay(api, node)
    await viewer.frames(len(viewer.counters) + 30)
    after = await _relay(api, node)

    assert after["livemall_relay_live_shows"] >= 1 and after["livemall_relay_viewers"] >= 1
    assert after["livemall_relay_publishers"] >= 1
    for counter in ("packets_forwarded", "bytes_forwarded", "frames_received"):
        assert after[f"livemall_relay_{counter}_total"] > before[f"livemall_relay_{counter}_total"], counter
    # A join may or may not need a keyframe request (a recent keyframe is replayed): present, not moved.
    for series in ("keyframe_requests_total", "plis_sent_total", "drops_total", "viewers_waiting_for_keyframe"):
        assert f"livemall_relay_{series}" in after, series
    assert not any(str(show_id) in name for name in after)  # no per-show series
