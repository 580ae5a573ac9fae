"""Fails when aiortc changes an internal the simulcast hooks of live/aiortc_hooks.py rely
on (accept_header_extensions, route_rtp_packets, receiver_codecs, receiver_rtcp_ssrc,
send_receiver_rtcp) or a building block live/simulcast_ingest.py takes from aiortc."""

from __future__ import annotations

import inspect

import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcpeerconnection import RTCPeerConnection as PeerConnectionClass
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx, wrap_rtx
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters

from live import aiortc_hooks
from live.sdp import REPAIRED_RTP_STREAM_ID, RTP_STREAM_ID


def _source(obj: object) -> str:
    return inspect.getsource(obj)  # type: ignore[arg-type]


@pytest.fixture
async def transceiver():
    pc = RTCPeerConnection()
    yield pc.addTransceiver("video", direction="recvonly")
    await pc.close()


def test_header_extensions_added_to_the_transceiver_are_answered_and_parsed(transceiver):
    aiortc_hooks.accept_header_extensions(transceiver, [(RTP_STREAM_ID, 10), (REPAIRED_RTP_STREAM_ID, 11)])

    assert {(e.uri, e.id) for e in transceiver._headerExtensions} >= {(RTP_STREAM_ID, 10), (REPAIRED_RTP_STREAM_ID, 11)}
    answer_side = _source(PeerConnectionClass)
    assert "transceiver._headerExtensions" in answer_side  # the answer's a=extmap lines
    assert "headerExtensions=transceiver._headerExtensions" in _source(PeerConnectionClass._RTCPeerConnection__remoteRtp)
    # and the receive parameters configure the parser that fills the rid fields
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=10, uri=RTP_STREAM_ID)]))
    packet = RtpPacket(payload_type=96, sequence_number=1, timestamp=1, ssrc=5)
    packet.extensions.rtp_stream_id = "f"
    assert RtpPacket.parse(packet.serialize(extensions), extensions).extensions.rtp_stream_id == "f"


def test_the_transport_hands_every_rtp_packet_to_the_receivers_handler_which_can_be_replaced(transceiver):
    source = _source(RTCDtlsTransport._handle_rtp_data)
    assert "await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" in source
    router = _source(RtpRouter.route_rtp)
    assert "self.ssrc_table[packet.ssrc] = pt_receiver" in router  # new SSRCs learned by payload type

    seen = []

    async def handler(packet, arrival_time_ms):
        seen.append((packet, arrival_time_ms))

    aiortc_hooks.route_rtp_packets(transceiver.receiver, handler)
    assert transceiver.receiver._handle_rtp_packet is not RTCRtpReceiver._handle_rtp_packet


def test_the_receivers_codec_table_rtcp_ssrc_and_rtcp_sender_are_where_the_hooks_read_them(transceiver):
    receiver = transceiver.receiver
    assert isinstance(aiortc_hooks.receiver_codecs(receiver), dict)
    assert "self.__codecs[codec.payloadType] = codec" in _source(RTCRtpReceiver.receive)
    receiver._set_rtcp_ssrc(1234)
    assert aiortc_hooks.receiver_rtcp_ssrc(receiver) == 1234
    assert inspect.iscoroutinefunction(aiortc_hooks.send_receiver_rtcp(receiver))
    assert "self.transport._send_rtp(bytes(packet))" in _source(RTCRtpReceiver._send_rtcp)


def test_the_building_blocks_of_the_simulcast_ingest_keep_their_shape():
    statistics = StreamStatistics(90000)
    packet = RtpPacket(payload_type=96, sequence_number=10, timestamp=0, ssrc=1, payload=b"x")
    statistics.add(packet)
    assert (statistics.packets_received, statistics.max_seq, statistics.packets_lost) == (1, 10, 0)
    assert isinstance(statistics.fraction_lost, int) and isinstance(statistics.jitter, int)
    nacks = NackGenerator()
    nacks.add(packet)
    assert nacks.add(RtpPacket(payload_type=96, sequence_number=13, timestamp=0, ssrc=1)) is True
    assert nacks.missing == {11, 12}
    rtx = wrap_rtx(packet, payload_type=97, sequence_number=5, ssrc=2)
    assert unwrap_rtx(rtx, payload_type=96, ssrc=1).sequence_number == 10
