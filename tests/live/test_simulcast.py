"""Simulcast end to end: a publisher's layers in, one layer per viewer out, over real
aiortc peers (tests/live/simulcast_publisher.py sends layers as Chromium does)."""

from __future__ import annotations

from typing import Any

import av
import pytest

from live.errors import BadOffer
from live.hub import ShowReconnecting
from tests.live.conftest import eventually


BOTTOM, MIDDLE, TOP = (80, 45), (160, 90), (320, 180)


def layers(hub: Any, show: int) -> list[dict[str, Any]]:
    return hub.stats()["shows"][show]["tracks"]["video"]["layers"]


async def every_layer_active(hub: Any, show: int = 1) -> None:
    """Layers are forwarded once mapped onto one timeline (their first Sender Report)."""
    await eventually(lambda: all(layer["active"] and layer["size"] for layer in layers(hub, show)))


async def test_the_relay_answers_a_simulcast_offer_with_every_layer_and_receives_them(hub, simulcast_publisher):
    source = simulcast_publisher()
    session = await source.publish(hub, 1)

    assert source.simulcast_accepted
    assert session.answer_sdp.count("a=rid:") == 3 and "a=simulcast:recv q;h;f" in session.answer_sdp
    assert "x-google-start-bitrate" in session.answer_sdp
    await eventually(lambda: all(layer["active"] and layer["size"] for layer in layers(hub, 1)))
    assert [tuple(layer["size"]) for layer in layers(hub, 1)] == [BOTTOM, MIDDLE, TOP]


async def test_each_viewer_gets_one_layer_the_uncapped_one_the_top(hub, simulcast_publisher, layer_viewer):
    await simulcast_publisher().publish(hub, 1)
    await every_layer_active(hub)
    full, saver = layer_viewer(), layer_viewer()
    await full.join(hub, 1)
    saver.session = await hub.play(1, await saver.offer(), max_quality=0)
    from aiortc import RTCSessionDescription

    await saver.pc.setRemoteDescription(RTCSessionDescription(saver.session.answer_sdp, "answer"))

    await full.frames(20)
    await saver.frames(20)

    assert set(full.sizes[-10:]) == {TOP}
    assert set(saver.sizes[-10:]) == {BOTTOM}
    assert all(b > a for a, b in zip(full.counters, full.counters[1:]))


async def test_a_viewer_moved_between_layers_decodes_one_unbroken_stream(hub, simulcast_publisher, layer_viewer):
    await simulcast_publisher().publish(hub, 1)
    await every_layer_active(hub)
    watcher = layer_viewer()
    session = await watcher.join(hub, 1)
    await watcher.frames(10)

    for quality, size in ((0, BOTTOM), (1, MIDDLE), (0, BOTTOM), (None, TOP)):
        hub.set_quality(1, session.id, quality)
        await watcher.until(lambda size=size: watcher.sizes and watcher.sizes[-1] == size, timeout=15)
        await watcher.frames(len(watcher.counters) + 5)

    # Counters never go back (no picture from an earlier moment; at a switch the new
    # layer's keyframe may show the instant the old layer's last frame showed), with
    # few gaps at the switches.
    pairs = list(zip(watcher.counters, watcher.sizes))
    assert all(b >= a for a, b in zip(watcher.counters, watcher.counters[1:])), " ".join(
        f"{pairs[i]}->{pairs[i + 1]}" for i in range(len(pairs) - 1) if pairs[i + 1][0] < pairs[i][0])
    assert sum(b - a - 1 for a, b in zip(watcher.counters, watcher.counters[1:])) < 30
    [stats] = [s for s in (await watcher.pc.getStats()).values() if s.type == "inbound-rtp" and s.kind == "video"]
    assert stats.packetsLost < 10  # the sequence numbers ran on across the switches
    assert hub.stats()["layer_switches_total"] >= 4


async def test_a_simulcast_show_is_recorded_from_its_largest_layer(hub, simulcast_publisher, layer_viewer, events):
    session = await simulcast_publisher().publish(hub, 1)
    await every_layer_active(hub)
    watcher = layer_viewer()
    await watcher.join(hub, 1)
    await watcher.frames(60)

    await hub.stop(1, session.id)
    ended = await events.show_ended()

    with av.open(ended.recording_path) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == TOP
        assert sum(1 for _ in container.decode(video=0)) >= 30


async def test_packets_with_a_rid_the_answer_did_not_accept_are_dropped_and_counted(hub, simulcast_publisher, layer_viewer):
    source = simulcast_publisher(
        layers=[("q", 80, 45), ("h", 160, 90), ("f", 320, 180), ("x", 320, 180)],
        send_unanswered_layers=True,
    )
    session = await source.publish(hub, 1)
    watcher = layer_viewer()
    await watcher.join(hub, 1)

    await watcher.frames(10)
    assert "a=simulcast:recv q;h;f" in session.answer_sdp
    assert hub.stats()["shows"][1]["tracks"]["video"]["simulcast_unknown_rid_packets"] > 0


async def test_a_simulcast_show_resumes_under_the_same_viewers(make_hub, simulcast_publisher, layer_viewer, events):
    hub = make_hub(publisher_grace=20)
    first = simulcast_publisher()
    await first.publish(hub, 1)
    watcher = layer_viewer()
    await watcher.join(hub, 1)
    await watcher.frames(10)

    await first.close()
    await events.next(ShowReconnecting)
    decoded = len(watcher.counters)
    with pytest.raises(BadOffer, match="3 video layer"):
        await simulcast_publisher(layers=[("q", 80, 45), ("f", 320, 180)]).publish(hub, 1)
    await simulcast_publisher().publish(hub, 1)

    await watcher.until(lambda: len(watcher.counters) >= decoded + 10, timeout=15)
    [stats] = [s for s in (await watcher.pc.getStats()).values() if s.type == "inbound-rtp" and s.kind == "video"]
    assert stats.packetsLost < 10


async def test_lost_layer_packets_are_asked_for_again_on_that_layer(hub, simulcast_publisher, layer_viewer):
    source = simulcast_publisher(textured=True)
    await source.publish(hub, 1)
    watcher = layer_viewer()
    await watcher.join(hub, 1)
    await watcher.frames(10)

    source.drop("f", 3)
    await watcher.frames(len(watcher.counters) + 30)

    assert source.layer("f").nacks_received >= 1
    assert source.layer("f").retransmissions >= 1
    assert all(b > a for a, b in zip(watcher.counters, watcher.counters[1:]))
