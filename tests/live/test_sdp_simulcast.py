"""Simulcast in offers and answers (live/sdp.py), and the test simulcast publisher.

The offer and answer tests need no network: they start from SDP captured from Chromium
156 and from the relay (tests/live/fixtures/README.md says how). The last tests connect
``SimulcastPublisher`` to a real LiveHub and run in the loopback network namespace
(``bash tests/run tests/live/test_sdp_simulcast.py``).
"""

from __future__ import annotations

import fractions
from pathlib import Path
from typing import Callable

import pytest
from aiortc import sdp
from aiortc.codecs import depayload
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from live.errors import BadOffer
from live.hub import LiveHub
from live.sdp import (
    REPAIRED_RTP_STREAM_ID,
    RTP_STREAM_ID,
    SimulcastOffer,
    accepted_extensions,
    parse_offer,
    simulcast_answer,
)
from tests.live.conftest import eventually, in_order_with_few_gaps
from tests.live.simulcast_publisher import (
    LayerViewer,
    SimulcastPublisher,
    answered_rids,
    layer_counter_frame,
    read_layer_counter,
)

FIXTURES = Path(__file__).parent / "fixtures"
SHOW = 1


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode()  # CRLF, as sent


CHROMIUM_OFFER = fixture("chromium_simulcast_offer.sdp")
VP8_ANSWER = fixture("relay_answer_vp8.sdp")
H264_ANSWER = fixture("relay_answer_h264.sdp")
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
CHROMIUM_RIDS = SimulcastOffer(rids=("q", "h", "f"), rid_extension=10, repaired_rid_extension=11)
NO_RID_EXTMAP = (f"a=extmap:10 {RTP_STREAM_ID}",)  # chromium_offer(without=...)
NO_REPAIRED_RID_EXTMAP = (f"a=extmap:11 {REPAIRED_RTP_STREAM_ID}",)
Q_AND_H = ("a=rid:q send", "a=rid:h send")


def chromium_offer(*layer_lines: str, without: tuple[str, ...] = ()) -> str:
    """The captured offer with its a=rid/a=simulcast lines replaced by ``layer_lines``
    and lines starting with ``without`` left out. Video is its last m-section."""
    lines = [
        line
        for line in CHROMIUM_OFFER.split("\r\n")
        if not line.startswith(("a=rid:", "a=simulcast:") + without)
    ]
    return "\r\n".join(lines[:-1] + list(layer_lines) + [""])


def simulcast_of(text: str) -> SimulcastOffer | None:
    video = parse_offer(text, role="publisher").first("video")
    assert video is not None
    return video.simulcast


# --- offers ---------------------------------------------------------------------------


def test_chromium_offer_gives_its_three_rids_in_order_with_the_extension_ids() -> None:
    offer = parse_offer(CHROMIUM_OFFER, role="publisher")

    video = offer.first("video")
    assert video is not None and video.mid == "1" and video.ssrc is None
    assert video.simulcast == CHROMIUM_RIDS


def test_chromium_offer_audio_is_not_simulcast() -> None:
    audio = parse_offer(CHROMIUM_OFFER, role="publisher").first("audio")

    assert audio is not None and audio.simulcast is None


@pytest.mark.parametrize(
    "rids", [("lo", "hi"), ("low", "mid", "high"), ("0", "layer_1", "A-2"), ("x" * 16, "y")]
)
def test_any_rid_names_are_layers_in_simulcast_order(rids: tuple[str, ...]) -> None:
    offer = chromium_offer(*(f"a=rid:{r} send" for r in rids), "a=simulcast:send " + ";".join(rids))

    assert simulcast_of(offer) == SimulcastOffer(rids, 10, 11)


def test_more_than_three_rids_keep_the_first_three() -> None:
    rids = ("a", "b", "c", "d", "e")
    offer = chromium_offer(*(f"a=rid:{r} send" for r in rids), "a=simulcast:send a;b;c;d;e")

    assert simulcast_of(offer) == SimulcastOffer(("a", "b", "c"), 10, 11)


def test_simulcast_without_the_rid_extension_is_a_bad_offer() -> None:
    offer = chromium_offer(
        *Q_AND_H, "a=simulcast:send q;h", without=NO_RID_EXTMAP
    )

    with pytest.raises(BadOffer, match=f"simulcast needs the {RTP_STREAM_ID} extension"):
        parse_offer(offer, role="publisher")


def test_simulcast_without_the_repaired_rid_extension_has_none() -> None:
    offer = chromium_offer(
        *Q_AND_H, "a=simulcast:send q;h", without=NO_REPAIRED_RID_EXTMAP
    )

    assert simulcast_of(offer) == SimulcastOffer(("q", "h"), 10, None)


@pytest.mark.parametrize("bad", ["q!", "x" * 17, "h.1", "é", "q h"])
def test_a_malformed_rid_line_is_a_bad_offer(bad: str) -> None:
    offer = chromium_offer("a=rid:q send", f"a=rid:{bad} send", "a=simulcast:send q;h")

    with pytest.raises(BadOffer):
        parse_offer(offer, role="publisher")


@pytest.mark.parametrize(
    "listed", ["q;h!", "q;" + "x" * 17, "q;;h", "q;h;", "q;~", "q,;h", "q;h,é"]
)
def test_a_malformed_rid_in_simulcast_is_a_bad_offer(listed: str) -> None:
    offer = chromium_offer("a=rid:q send", "a=rid:h send", f"a=simulcast:send {listed}")

    with pytest.raises(BadOffer):
        parse_offer(offer, role="publisher")


def test_a_rid_listed_twice_in_simulcast_is_a_bad_offer() -> None:
    offer = chromium_offer("a=rid:q send", "a=rid:h send", "a=simulcast:send q;h;q")

    with pytest.raises(BadOffer, match="listed twice"):
        parse_offer(offer, role="publisher")


def test_a_rid_with_two_rid_lines_is_a_bad_offer() -> None:
    offer = chromium_offer("a=rid:q send", "a=rid:h send", "a=rid:q send", "a=simulcast:send q;h")

    with pytest.raises(BadOffer, match="more than one a=rid"):
        parse_offer(offer, role="publisher")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "send",
        "send q;h send f",
        "sideways q;h",
        "q;h",
        "send q;h recv",
        "send q;h recv r extra",
    ],
)
def test_a_malformed_simulcast_line_is_a_bad_offer(value: str) -> None:
    offer = chromium_offer("a=rid:q send", "a=rid:h send", f"a=simulcast:{value}")

    with pytest.raises(BadOffer):
        parse_offer(offer, role="publisher")


def test_two_simulcast_lines_are_a_bad_offer() -> None:
    offer = chromium_offer(*Q_AND_H, "a=simulcast:send q;h", "a=simulcast:send h;q")

    with pytest.raises(BadOffer, match="more than one a=simulcast"):
        parse_offer(offer, role="publisher")


def test_an_extmap_id_given_to_two_extensions_is_a_bad_offer() -> None:
    offer = chromium_offer(
        *Q_AND_H, "a=simulcast:send q;h", without=NO_REPAIRED_RID_EXTMAP
    ).replace("a=extmap:9 ", f"a=extmap:10 {REPAIRED_RTP_STREAM_ID}\r\na=extmap:9 ")

    with pytest.raises(BadOffer, match="extmap id 10"):
        parse_offer(offer, role="publisher")


def test_alternatives_answer_the_first_of_each_stream() -> None:
    offer = chromium_offer(
        "a=rid:q send", "a=rid:q2 send", "a=rid:h send", "a=rid:f send", "a=rid:f2 send",
        "a=simulcast:send q,q2;h;f,f2",
    )

    assert simulcast_of(offer) == SimulcastOffer(("q", "h", "f"), 10, 11)


def test_paused_streams_are_left_out() -> None:
    offer = chromium_offer(*Q_AND_H, "a=rid:f send", "a=simulcast:send q;~h;f")

    assert simulcast_of(offer) == SimulcastOffer(("q", "f"), 10, 11)


def test_a_paused_first_alternative_gives_way_to_the_next() -> None:
    offer = chromium_offer(*Q_AND_H, "a=rid:q2 send", "a=simulcast:send ~q,q2;h")

    assert simulcast_of(offer) == SimulcastOffer(("q2", "h"), 10, 11)


def test_rids_without_a_send_line_are_left_out() -> None:
    offer = chromium_offer(
        "a=rid:q send", "a=rid:h recv", "a=rid:f send", "a=simulcast:send q;h;f;x"
    )

    assert simulcast_of(offer) == SimulcastOffer(("q", "f"), 10, 11)


def test_the_recv_list_of_a_publisher_is_ignored() -> None:
    offer = chromium_offer(*Q_AND_H, "a=rid:r recv", "a=simulcast:recv r send q;h")

    assert simulcast_of(offer) == SimulcastOffer(("q", "h"), 10, 11)


def test_rid_lines_without_simulcast_are_a_single_layer() -> None:
    offer = chromium_offer("a=rid:q send", "a=rid:h send", "a=rid:f send")

    assert simulcast_of(offer) is None


@pytest.mark.parametrize("listed", ["q", "q;~h", "q;x"])
def test_one_usable_layer_is_a_single_layer(listed: str) -> None:
    # "a rid without the extmap" is not a BadOffer either: one layer needs no rid
    offer = chromium_offer(
        *Q_AND_H, f"a=simulcast:send {listed}", without=NO_RID_EXTMAP
    )

    assert simulcast_of(offer) is None


def test_a_viewer_offer_is_never_simulcast() -> None:
    offer = chromium_offer("a=rid:q recv", "a=rid:h recv", "a=simulcast:recv q;h").replace(
        "a=sendonly", "a=recvonly"
    )

    video = parse_offer(offer, role="viewer").first("video")

    assert video is not None and video.simulcast is None


def test_an_offer_without_simulcast_parses_as_before() -> None:
    offer = chromium_offer()

    video = parse_offer(offer, role="publisher").first("video")

    assert video is not None and video.simulcast is None and video.mid == "1"


@pytest.mark.parametrize(
    "lines",
    [
        ("a=simulcast:",),
        ("a=simulcast:send ;",),
        ("a=simulcast:send ~",),
        ("a=rid:", "a=simulcast:send q;h"),
        ("a=rid:q", "a=simulcast:send q;h"),
        ("a=rid:q sendrecv", "a=simulcast:send q;h"),
        ("a=rid:q send", "a=rid:h send", "a=extmap:0 " + RTP_STREAM_ID, "a=simulcast:send q;h"),
        ("a=rid:q send", "a=rid:h send", "a=extmap:256 " + RTP_STREAM_ID, "a=simulcast:send q;h"),
        ("a=rid:q send", "a=rid:h send", "a=simulcast:send q;h\x00"),
    ],
)
def test_garbage_in_simulcast_lines_is_a_bad_offer_not_a_crash(lines: tuple[str, ...]) -> None:
    without = ("a=extmap:10 ",) if any(line.startswith("a=extmap:") for line in lines) else ()
    offer = chromium_offer(*lines, without=without)

    with pytest.raises(BadOffer):
        parse_offer(offer, role="publisher")


def test_accepted_extensions_are_rid_and_repaired_rid() -> None:
    video = parse_offer(CHROMIUM_OFFER, role="publisher").first("video")
    assert video is not None

    assert accepted_extensions(video) == [(RTP_STREAM_ID, 10), (REPAIRED_RTP_STREAM_ID, 11)]


def test_a_single_layer_m_line_needs_no_extensions() -> None:
    video = parse_offer(chromium_offer(), role="publisher").first("video")
    assert video is not None

    assert accepted_extensions(video) == []


# --- answers --------------------------------------------------------------------------


def added_lines(before: str, after: str) -> list[str]:
    """The lines of ``after`` that ``before`` lacks, checking that ``before``'s lines
    are all still there, in order."""
    old, new = before.split("\r\n"), after.split("\r\n")
    kept = iter(new)
    assert all(line in kept for line in old), "a line of the answer was lost or moved"
    remaining = list(new)
    for line in old:
        remaining.remove(line)
    return remaining


def test_vp8_answer_receives_the_rids_and_gets_a_start_bitrate_fmtp() -> None:
    edited = simulcast_answer(VP8_ANSWER, "1", CHROMIUM_RIDS, 2200)

    assert added_lines(VP8_ANSWER, edited) == [
        "a=rid:q recv",
        "a=rid:h recv",
        "a=rid:f recv",
        "a=simulcast:recv q;h;f",
        "a=fmtp:96 x-google-start-bitrate=2200",
    ]
    lines = edited.split("\r\n")
    assert lines[lines.index("a=mid:1") + 1] == "a=rid:q recv"
    after_feedback = lines[lines.index("a=rtcp-fb:96 goog-remb") + 1]
    assert after_feedback == "a=fmtp:96 x-google-start-bitrate=2200"


def test_h264_answer_gets_the_start_bitrate_on_its_fmtp() -> None:
    edited = simulcast_answer(H264_ANSWER, "1", CHROMIUM_RIDS, 2200)

    fmtp = "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"
    started = fmtp + ";x-google-start-bitrate=2200"
    assert added_lines(H264_ANSWER.replace(fmtp, ""), edited.replace(started, "")) == [
        "a=rid:q recv",
        "a=rid:h recv",
        "a=rid:f recv",
        "a=simulcast:recv q;h;f",
    ]
    assert started in edited.split("\r\n")


def test_edited_answer_parses_with_the_start_bitrate_on_the_codec() -> None:
    edited = simulcast_answer(VP8_ANSWER, "1", CHROMIUM_RIDS, 2200)

    video = sdp.SessionDescription.parse(edited).media[1]

    assert video.rtp.codecs[0].parameters == {"x-google-start-bitrate": "2200"}
    assert video.rtp.codecs[1].parameters == {"apt": 96}


def test_the_answer_lists_only_the_layers_kept() -> None:
    offer = chromium_offer(*(f"a=rid:{r} send" for r in "abcd"), "a=simulcast:send a;b;c;d")

    edited = simulcast_answer(VP8_ANSWER, "1", simulcast_of(offer), 1000)

    assert "a=simulcast:recv a;b;c" in edited.split("\r\n")
    assert "a=rid:d recv" not in edited


def test_without_a_mid_the_first_video_section_is_edited() -> None:
    assert simulcast_answer(VP8_ANSWER, None, CHROMIUM_RIDS, 2200) == simulcast_answer(
        VP8_ANSWER, "1", CHROMIUM_RIDS, 2200
    )


def test_the_audio_section_is_left_alone() -> None:
    edited = simulcast_answer(VP8_ANSWER, "1", CHROMIUM_RIDS, 2200)

    audio = lambda text: text.split("m=video")[0]  # noqa: E731
    assert audio(edited) == audio(VP8_ANSWER)


def test_a_single_layer_answer_is_unchanged() -> None:
    assert simulcast_answer(VP8_ANSWER, "1", None, 2200) is VP8_ANSWER


def test_an_answer_without_that_video_mid_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        simulcast_answer(VP8_ANSWER, "0", CHROMIUM_RIDS, 2200)  # mid 0 is the audio


def test_a_rejected_video_m_line_is_left_alone() -> None:
    rejected = VP8_ANSWER.replace("m=video 40059 ", "m=video 0 ")

    assert simulcast_answer(rejected, "1", CHROMIUM_RIDS, 2200) == rejected


def test_lf_only_answers_keep_their_line_endings() -> None:
    answer = VP8_ANSWER.replace("\r\n", "\n")

    edited = simulcast_answer(answer, "1", CHROMIUM_RIDS, 2200)

    assert "\r" not in edited
    assert edited.replace("\n", "\r\n") == simulcast_answer(VP8_ANSWER, "1", CHROMIUM_RIDS, 2200)


# --- the test publisher's counters ---------------------------------------------------


@pytest.mark.parametrize("size", [(320, 180), (160, 90), (80, 45)])
def test_layer_counters_read_back_through_vp8_at_every_layer_size(size: tuple[int, int]) -> None:
    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    counters = list(range(0xFF80, 0x10000)) + list(range(0x40))  # every band flips
    decoded = []

    for n, counter in enumerate(counters):
        frame = layer_counter_frame(counter, *size)
        frame.pts, frame.time_base = n * 3000, fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame)
        data = b"".join(depayload(VP8, payload) for payload in payloads)
        decoded += [read_layer_counter(f) for f in decoder.decode(JitterFrame(data, n * 3000))]

    assert decoded == counters


# --- SimulcastPublisher against today's relay (loopback network namespace) -----------


def test_the_publisher_sends_what_the_answer_receives() -> None:
    # the relay's answer once it accepts the rid extensions (accepted_extensions)
    accepting = VP8_ANSWER.replace(
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=mid:1",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
        f"a=extmap:10 {RTP_STREAM_ID}\r\na=extmap:11 {REPAIRED_RTP_STREAM_ID}\r\na=mid:1",
    )
    simulcast = simulcast_answer(accepting, "1", CHROMIUM_RIDS, 2200)
    paused = simulcast.replace("a=simulcast:recv q;h;f", "a=simulcast:recv q;~h;f")
    without_rid = simulcast.replace(f"a=extmap:10 {RTP_STREAM_ID}", "")

    assert answered_rids(VP8_ANSWER, "1") is None  # single layer: the first, without rid
    assert answered_rids(simulcast, "1") == ["q", "h", "f"]
    assert answered_rids(paused, "1") == ["q", "f"]
    assert answered_rids(without_rid, "1") is None  # layers it could not tell apart


async def test_simulcast_publisher_offers_its_layers_as_chromium_does(
    simulcast_publisher: Callable[..., SimulcastPublisher],
) -> None:
    publisher = simulcast_publisher(layers=[("lo", 80, 45), ("hi", 160, 90)])

    video = parse_offer(await publisher.offer(), role="publisher").first("video")

    assert video is not None
    assert video.simulcast == SimulcastOffer(("lo", "hi"), 10, 11)
    assert video.ssrc is None  # no a=ssrc lines, as in Chromium's


async def test_simulcast_publisher_reaches_a_viewer_through_the_relay(
    hub: LiveHub,
    simulcast_publisher: Callable[..., SimulcastPublisher],
    layer_viewer: Callable[..., LayerViewer],
) -> None:
    publisher = simulcast_publisher()
    await publisher.publish(hub, SHOW)
    watcher = layer_viewer()
    await watcher.join(hub, SHOW)
    await watcher.frames(10)
    received = hub.stats()["frames_received_total"]

    await watcher.frames(40)

    assert hub.stats()["frames_received_total"] > received
    assert set(watcher.sizes) <= {(layer.width, layer.height) for layer in publisher.layers}
    assert in_order_with_few_gaps(watcher.counters, allowed_missing=5), watcher.counters
    assert publisher.failure is None


async def test_every_sending_layer_sends_sender_reports_and_gets_receiver_reports(
    hub: LiveHub, simulcast_publisher: Callable[..., SimulcastPublisher]
) -> None:
    publisher = simulcast_publisher()
    await publisher.publish(hub, SHOW)

    await eventually(
        lambda: all(
            layer.sender_reports_sent >= 2 and layer.reports_received >= 1
            for layer in publisher.sending
        )
    )
    assert publisher.sending


async def test_a_pli_from_the_relay_makes_a_keyframe_on_every_sending_layer(
    make_hub: Callable[..., LiveHub],
    simulcast_publisher: Callable[..., SimulcastPublisher],
    layer_viewer: Callable[..., LayerViewer],
) -> None:
    hub = make_hub(replay_window=0.0)  # a late viewer needs a new keyframe
    publisher = simulcast_publisher()
    await publisher.publish(hub, SHOW)
    await eventually(lambda: publisher.frames >= 30)
    keyframes = {layer.rid: layer.keyframes_sent for layer in publisher.sending}

    watcher = layer_viewer()
    await watcher.join(hub, SHOW)
    await watcher.frames(5)

    assert sum(layer.plis_received for layer in publisher.layers) >= 1
    assert all(layer.keyframes_sent > keyframes[layer.rid] for layer in publisher.sending)


async def test_a_packet_lost_on_the_way_is_retransmitted_when_the_relay_nacks_it(
    hub: LiveHub,
    simulcast_publisher: Callable[..., SimulcastPublisher],
    layer_viewer: Callable[..., LayerViewer],
) -> None:
    publisher = simulcast_publisher()
    await publisher.publish(hub, SHOW)
    watcher = layer_viewer()
    await watcher.join(hub, SHOW)
    await watcher.frames(10)
    layer = publisher.sending[0]

    publisher.drop(layer.rid, 1)
    await eventually(lambda: layer.retransmissions >= 1)
    await watcher.frames(len(watcher.counters) + 20)

    assert layer.packets_dropped == 1 and layer.packets_nacked >= 1
    assert in_order_with_few_gaps(watcher.counters, allowed_missing=5), watcher.counters
