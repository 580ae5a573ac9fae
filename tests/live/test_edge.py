"""Edge relaying: a hub that pulls a show from its origin once and serves its own viewers.

Two hubs in one process: the origin, with a real aiortc publisher, and the edge, whose
``send_offer`` hands its WHEP offer to ``origin.play`` as the web layer would POST it to
the origin's /whep/{show}. Every media path is real: publisher → origin → edge → viewers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from live.errors import PublisherExists, ShowNotLive
from live.hub import LiveHub, ShowResumed
from tests.live.conftest import Events, eventually, in_order_with_few_gaps
from tests.live.simulcast_publisher import DEFAULT_LAYERS

SHOW = 1


def whep_to(origin: LiveHub, show_id: int = SHOW) -> Callable[[str], Awaitable[str]]:
    async def send_offer(offer: str) -> str:
        return (await origin.play(show_id, offer)).answer_sdp

    return send_offer


@pytest.fixture
def edge_events() -> Events:
    return Events()


@pytest.fixture
def make_edge(make_hub, edge_events: Events) -> Callable[..., LiveHub]:
    def make(**options) -> LiveHub:
        options.setdefault("on_event", edge_events)
        options.setdefault("recordings_dir", None)
        return make_hub(**options)

    return make


async def test_edge_viewers_receive_the_origins_frames_in_order(hub, make_edge, publisher, viewer):
    await publisher().publish(hub, SHOW)
    edge = make_edge()
    await edge.pull(SHOW, whep_to(hub))

    watchers = [viewer(), viewer()]
    for watcher in watchers:
        await watcher.join(edge, SHOW)
    await asyncio.gather(*(w.frames(30) for w in watchers))

    for watcher in watchers:
        assert in_order_with_few_gaps(watcher.counters), watcher.counters


async def test_h264_show_reaches_edge_viewers_in_order(hub, make_edge, publisher, viewer):
    await publisher(codec="H264").publish(hub, SHOW)
    edge = make_edge()
    await edge.pull(SHOW, whep_to(hub))
    watcher = viewer()
    await watcher.join(edge, SHOW)
    await watcher.frames(30)

    assert in_order_with_few_gaps(watcher.counters), watcher.counters
    assert edge.stats()["shows"][SHOW]["tracks"]["video"]["codec"] == "h264"


async def test_edge_viewers_receive_the_publishers_audio(hub, make_edge, publisher, viewer):
    await publisher().publish(hub, SHOW)
    edge = make_edge()
    await edge.pull(SHOW, whep_to(hub))
    watcher = viewer(kinds=("audio",))
    await watcher.join(edge, SHOW)

    await watcher.until(lambda: watcher.audio_frames >= 25)


async def test_late_edge_viewer_gets_a_keyframe_from_the_origins_publisher(
    make_hub, make_edge, publisher, viewer
):
    # No replay on either hub: the late viewer's picture can only come from a keyframe
    # the real publisher sends because the edge's PLI reached it through the origin.
    origin = make_hub(replay_window=0.0)
    await publisher().publish(origin, SHOW)
    edge = make_edge(replay_window=0.0)
    await edge.pull(SHOW, whep_to(origin))
    early = viewer()
    await early.join(edge, SHOW)
    await early.frames(60)  # two seconds in: the publisher sends no keyframe unasked
    origin_before = origin.stats()
    edge_plis = edge.stats()["plis_sent_total"]

    live_at_join = early.counters[-1]
    late = viewer()
    await late.join(edge, SHOW)
    await late.frames(10)

    assert late.counters[0] >= live_at_join - 15
    assert in_order_with_few_gaps(late.counters), late.counters
    assert edge.stats()["plis_sent_total"] > edge_plis  # the edge asked its origin
    origin_after = origin.stats()
    assert origin_after["keyframe_requests_total"] > origin_before["keyframe_requests_total"]
    assert origin_after["plis_sent_total"] > origin_before["plis_sent_total"]


async def test_origin_counts_an_edge_as_one_viewer(hub, make_edge, publisher, viewer):
    await publisher().publish(hub, SHOW)
    edge = make_edge()
    await edge.pull(SHOW, whep_to(hub))
    watchers = [viewer() for _ in range(3)]
    for watcher in watchers:
        await watcher.join(edge, SHOW)
    await asyncio.gather(*(w.frames(5) for w in watchers))

    assert hub.stats()["shows"][SHOW]["viewers"] == 1
    assert edge.stats()["shows"][SHOW]["viewers"] == 3
    assert edge.stats()["edge_shows"] == 1
    assert edge.stats()["live_shows"] == 0  # published elsewhere


async def test_concurrent_pulls_of_a_show_share_one_connection_to_the_origin(
    hub, make_edge, publisher
):
    await publisher().publish(hub, SHOW)
    edge = make_edge()

    first, second = await asyncio.gather(
        edge.pull(SHOW, whep_to(hub)), edge.pull(SHOW, whep_to(hub))
    )

    assert first.id == second.id
    assert hub.stats()["shows"][SHOW]["viewers"] == 1
    assert edge.stats()["edge_pulls_total"] == 1


async def test_origin_ending_the_show_ends_it_for_edge_viewers(
    hub, make_edge, publisher, viewer, edge_events
):
    source = publisher()
    session = await source.publish(hub, SHOW)
    edge = make_edge()
    await edge.pull(SHOW, whep_to(hub))
    watcher = viewer()
    await watcher.join(edge, SHOW)
    await watcher.frames(10)

    await hub.stop(SHOW, session.id)

    await watcher.until(lambda: "video" in watcher.ended)
    await eventually(lambda: not edge.is_pulled(SHOW))
    with pytest.raises(ShowNotLive):
        await viewer().join(edge, SHOW)


async def test_edge_emits_no_show_events_and_records_nothing(
    hub, make_edge, publisher, viewer, events, edge_events, tmp_path
):
    source = publisher()
    session = await source.publish(hub, SHOW)
    edge = make_edge(recordings_dir=tmp_path / "edge-recordings")
    await edge.pull(SHOW, whep_to(hub))
    watcher = viewer()
    await watcher.join(edge, SHOW)
    await watcher.frames(5)
    await hub.stop(SHOW, session.id)
    await events.show_ended()
    await eventually(lambda: not edge.is_pulled(SHOW))

    assert edge_events.all == []
    assert not (tmp_path / "edge-recordings").exists()
    assert edge.stats()["shows_started_total"] == edge.stats()["shows_ended_total"] == 0


async def test_edge_without_viewers_lets_the_show_go_after_the_linger(
    hub, make_edge, publisher, viewer
):
    await publisher().publish(hub, SHOW)
    edge = make_edge(edge_linger=0.5)
    await edge.pull(SHOW, whep_to(hub))
    watcher = viewer()
    session = await watcher.join(edge, SHOW)
    await watcher.frames(5)

    await edge.stop(SHOW, session.id)

    await eventually(lambda: not edge.is_pulled(SHOW))
    await eventually(lambda: hub.stats()["shows"][SHOW]["viewers"] == 0)
    assert hub.is_live(SHOW)


async def test_pull_of_a_show_the_origin_does_not_have_raises_show_not_live(hub, make_edge):
    edge = make_edge()

    with pytest.raises(ShowNotLive):
        await edge.pull(SHOW, whep_to(hub))

    assert not edge.is_pulled(SHOW)
    assert edge.stats()["edge_shows"] == 0


async def test_pull_of_a_show_published_on_the_same_hub_raises_publisher_exists(hub, publisher):
    await publisher().publish(hub, SHOW)

    with pytest.raises(PublisherExists):
        await hub.pull(SHOW, whep_to(hub))


async def test_publishing_on_an_edge_takes_the_show_over(hub, make_edge, publisher, viewer):
    await publisher().publish(hub, SHOW)
    edge = make_edge()
    await edge.pull(SHOW, whep_to(hub))

    await publisher().publish(edge, SHOW)  # the show's publisher came back on this node

    assert edge.is_live(SHOW) and not edge.is_pulled(SHOW)
    watcher = viewer()
    await watcher.join(edge, SHOW)
    await watcher.frames(5)


async def test_session_ids_start_with_the_hubs_prefix(make_hub, publisher, viewer):
    hub = make_hub(session_prefix="n2.")
    session = await publisher().publish(hub, SHOW)
    watcher = viewer()
    viewing = await watcher.join(hub, SHOW)

    assert session.id.startswith("n2.") and viewing.id.startswith("n2.")
    await hub.stop(SHOW, viewing.id)


async def _edge_viewer_of_a_dead_origin(hub, make_edge, publisher, viewer):
    """An edge with a viewer watching, whose origin then dies (its publisher gone, and
    the web layer telling the edge so)."""
    source = publisher()
    await source.publish(hub, SHOW)
    edge = make_edge()
    await edge.pull(SHOW, whep_to(hub))
    watcher = viewer()
    await watcher.join(edge, SHOW)
    await watcher.frames(10)
    edge.origin_lost(SHOW)
    await source.close()
    return edge, watcher


async def test_an_edge_whose_origin_died_keeps_its_viewers_for_a_publisher_taking_over_here(
    hub, make_edge, publisher, viewer, edge_events
):
    edge, watcher = await _edge_viewer_of_a_dead_origin(hub, make_edge, publisher, viewer)
    seen = len(watcher.counters)
    await publisher().publish(edge, SHOW)  # the host publishes again, through this node

    resumed = await edge_events.next(ShowResumed)
    assert resumed.taken_over
    await watcher.frames(seen + 10)  # the same viewer connection, no new WHEP
    assert "video" not in watcher.ended
    assert edge.is_live(SHOW) and not edge.is_pulled(SHOW)
    assert edge.stats()["shows_taken_over_total"] == 1


async def test_an_edge_pulls_the_show_again_from_its_new_origin_under_the_same_viewers(
    hub, make_hub, make_edge, publisher, viewer
):
    edge, watcher = await _edge_viewer_of_a_dead_origin(hub, make_edge, publisher, viewer)
    new_origin = make_hub(recordings_dir=None)
    await publisher().publish(new_origin, SHOW)  # the host came back through a third node
    seen = len(watcher.counters)
    await edge.repull(SHOW, whep_to(new_origin))

    await watcher.frames(seen + 10)
    assert "video" not in watcher.ended
    assert new_origin.stats()["shows"][SHOW]["viewers"] == 1  # the edge, once


async def test_a_simulcast_publisher_takes_over_a_pulled_show_with_its_largest_layer(
    hub, make_edge, simulcast_publisher, layer_viewer, edge_events
):
    # The studio publishes three layers; an edge pulls one, so its viewers hang on a
    # single-layer track. When the origin dies and the studio publishes through the
    # edge, its largest layer feeds that track and the viewers stay connected.
    source = simulcast_publisher()
    await source.publish(hub, SHOW)
    edge = make_edge()
    await edge.pull(SHOW, whep_to(hub))
    watcher = layer_viewer()
    await watcher.join(edge, SHOW)
    await watcher.frames(10)
    edge.origin_lost(SHOW)
    await source.close()
    seen = len(watcher.counters)

    await simulcast_publisher().publish(edge, SHOW)

    assert (await edge_events.next(ShowResumed)).taken_over
    await watcher.until(lambda: len(watcher.counters) >= seen + 10, timeout=15)
    assert "video" not in watcher.ended
    largest = max(DEFAULT_LAYERS, key=lambda layer: layer[1] * layer[2])
    assert set(watcher.sizes[-5:]) == {largest[1:]}  # (right after a publish: the first layer up)
    assert edge.is_live(SHOW) and edge.stats()["shows_taken_over_total"] == 1
