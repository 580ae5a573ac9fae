"""Shows start and end; viewers come and go; errors for impossible requests."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCRtpReceiver

from live.errors import (
    BadOffer,
    PublisherExists,
    RelayUnavailable,
    ShowNotLive,
    UnknownSession,
)
from live.hub import ShowEnded, ShowReconnecting, ShowStarted
from tests.live.conftest import eventually


async def test_publish_makes_the_show_live_and_announces_it(hub, publisher, events, recordings):
    session = await publisher().publish(hub, 7)

    assert hub.is_live(7)
    assert session.kind == "publisher" and session.show_id == 7
    assert "a=recvonly" in session.answer_sdp
    [started] = events.all
    assert isinstance(started, ShowStarted) and started.show_id == 7
    assert started.started_at.utcoffset().total_seconds() == 0
    assert started.recording_path.startswith(str(recordings / "show-7-"))


async def test_second_publisher_for_a_live_show_raises_publisher_exists(hub, publisher):
    await publisher().publish(hub, 1)

    with pytest.raises(PublisherExists):
        await publisher().publish(hub, 1)
    assert hub.is_live(1)


async def test_play_on_a_show_that_is_not_live_raises_show_not_live(hub, viewer):
    with pytest.raises(ShowNotLive):
        await viewer().join(hub, 1)


async def test_stop_of_an_unknown_session_raises_unknown_session(hub, publisher):
    await publisher().publish(hub, 1)

    with pytest.raises(UnknownSession):
        await hub.stop(1, "no-such-session")
    with pytest.raises(UnknownSession):
        await hub.stop(2, "no-such-session")


async def test_stopping_the_publisher_ends_the_show_for_its_viewers(
    hub, publisher, viewer, events
):
    source = publisher()
    session = await source.publish(hub, 1)
    watchers = [viewer(), viewer()]
    await asyncio.gather(*(w.join(hub, 1) for w in watchers))
    await asyncio.gather(*(w.frames(5) for w in watchers))

    await hub.stop(1, session.id)

    ended = await events.show_ended()
    assert (ended.show_id, ended.reason) == (1, "deleted")
    assert not hub.is_live(1)
    for watcher in watchers:
        await watcher.until(lambda w=watcher: w.pc.connectionState == "closed")
    with pytest.raises(ShowNotLive):
        await viewer().join(hub, 1)


async def test_show_ended_fires_exactly_once(hub, publisher, events):
    source = publisher()
    session = await source.publish(hub, 1)

    await asyncio.gather(hub.stop(1, session.id), source.close(), return_exceptions=True)
    await events.show_ended()
    await hub.close()

    assert len(events.ended) == 1


async def test_publisher_that_sends_no_media_ends_the_show_when_the_grace_runs_out(
    make_hub, publisher, events
):
    hub = make_hub(media_timeout=1.0, publisher_grace=0.5)
    source = publisher()
    await source.publish(hub, 1)
    await eventually(lambda: hub.stats()["frames_received_total"] > 0)

    for sender in source.pc.getSenders():
        sender.replaceTrack(None)  # still connected, silent

    lost = await events.next(ShowReconnecting, timeout=5.0)
    ended = await events.show_ended(timeout=5.0)
    assert lost.reason == ended.reason == "no_media"


async def test_a_new_publisher_can_go_live_after_the_show_ended(hub, publisher, events):
    first = await publisher().publish(hub, 1)
    await hub.stop(1, first.id)

    await publisher().publish(hub, 1)

    assert hub.is_live(1)
    assert [type(e) for e in events.all] == [ShowStarted, ShowEnded, ShowStarted]


async def test_viewer_leaving_with_delete_is_removed(hub, publisher, viewer):
    await publisher().publish(hub, 1)
    watcher = viewer()
    session = await watcher.join(hub, 1)
    await watcher.frames(3)

    await hub.stop(1, session.id)

    assert hub.stats()["viewers"] == 0
    await watcher.until(lambda: watcher.pc.connectionState == "closed")
    with pytest.raises(UnknownSession):
        await hub.stop(1, session.id)


async def test_viewer_whose_connection_closes_is_reaped(hub, publisher, viewer):
    await publisher().publish(hub, 1)
    watcher = viewer()
    await watcher.join(hub, 1)
    await watcher.frames(3)

    await watcher.close()

    await eventually(lambda: hub.stats()["viewers"] == 0)
    assert hub.stats()["viewers_reaped_total"] == 1


async def test_viewer_that_vanishes_without_a_word_is_reaped(make_hub, publisher, viewer):
    hub = make_hub(viewer_timeout=3.0)
    await publisher().publish(hub, 1)
    watcher = viewer()
    await watcher.join(hub, 1)
    await watcher.frames(3)
    stayer = viewer()
    await stayer.join(hub, 1)

    # Pull the plug: close the viewer's sockets, so it sends nothing ever again
    # (no DTLS close, no RTCP) -- like a phone that lost its network.
    for transceiver in watcher.pc.getTransceivers():
        for protocol in transceiver.receiver.transport.transport._connection._protocols:
            protocol.transport.abort()

    await eventually(lambda: hub.stats()["viewers"] == 1, timeout=8.0)
    assert hub.stats()["viewers_reaped_total"] == 1
    assert stayer.pc.connectionState == "connected"


async def test_close_ends_every_show_and_closes_every_connection(
    hub, publisher, viewer, events
):
    sources = [publisher(), publisher()]
    await sources[0].publish(hub, 1)
    await sources[1].publish(hub, 2)
    watcher = viewer()
    await watcher.join(hub, 2)
    await watcher.frames(3)

    await hub.close()

    assert sorted((e.show_id, e.reason) for e in events.ended) == [
        (1, "shutdown"),
        (2, "shutdown"),
    ]
    assert not hub.is_live(1) and not hub.is_live(2)
    await watcher.until(lambda: watcher.pc.connectionState == "closed")
    assert hub.stats()["live_shows"] == 0


def _offer_with(media: str) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "a=fingerprint:sha-256 00:11\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n"
        f"{media}"
    )


@pytest.mark.parametrize(
    "offer",
    [
        pytest.param("", id="empty"),
        pytest.param("hello, relay", id="not-sdp"),
        pytest.param("<html></html>", id="html"),
        pytest.param("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", id="no-media"),
        pytest.param(
            _offer_with("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n"),
            id="data-only",
        ),
        pytest.param(
            _offer_with(
                "m=video 9 UDP/TLS/RTP/SAVPF 98\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n"
                "a=rtpmap:98 VP9/90000\r\n"
            ),
            id="vp9-only",
        ),
        pytest.param(_offer_with("m=video nine UDP/TLS/RTP/SAVPF 96\r\n"), id="broken-m-line"),
        pytest.param(
            _offer_with(
                "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n"
                "a=rtpmap:96 VP8/90000\r\n"
            ),
            id="no-rtcp-mux",
        ),
        pytest.param(12345, id="not-a-string"),
        pytest.param(
            _offer_with(
                "".join(
                    f"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\na=sendonly\r\n"
                    "a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
                    for i in range(300)
                )
            ),
            id="m-line-flood",
        ),
    ],
)
async def test_bad_offers_raise_bad_offer(hub, offer):
    with pytest.raises(BadOffer):
        await hub.publish(1, offer)
    assert not hub.is_live(1)


async def test_viewer_offer_without_the_shows_codec_raises_bad_offer(hub, publisher, viewer):
    await publisher(codec="H264").publish(hub, 1)
    vp8_only = viewer()
    vp8 = [c for c in RTCRtpReceiver.getCapabilities("video").codecs if c.name == "VP8"]
    vp8_only.pc.addTransceiver("video", direction="recvonly").setCodecPreferences(vp8)
    await vp8_only.pc.setLocalDescription(await vp8_only.pc.createOffer())

    with pytest.raises(BadOffer):
        await hub.play(1, vp8_only.pc.localDescription.sdp)


async def test_publisher_offer_from_a_receive_only_peer_raises_bad_offer(hub, viewer):
    wrong_way = viewer()

    with pytest.raises(BadOffer):
        await hub.publish(1, await wrong_way.offer())


async def test_publish_after_close_raises_relay_unavailable(hub, publisher):
    await hub.close()

    with pytest.raises(RelayUnavailable):
        await publisher().publish(hub, 1)


async def test_an_offer_with_hundreds_of_m_lines_is_refused(hub, publisher):
    valid = await publisher().offer()  # a real offer, then 200 small audio m-lines
    flood = valid + "".join(f"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:x{i}\r\n" for i in range(200))

    with pytest.raises(BadOffer, match="m-lines"):
        await hub.publish(1, flood)
    assert not hub.is_live(1)
    await publisher().publish(hub, 2)
    with pytest.raises(BadOffer, match="m-lines"):
        await hub.play(2, flood)
    assert hub.stats()["viewers"] == 0
