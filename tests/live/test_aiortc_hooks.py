"""Fails when aiortc changes an internal that live/aiortc_hooks.py relies on.

Each test names the hook; if one fails after an aiortc upgrade, re-read the aiortc
source the hook's docstring points to before touching anything else.
"""

from __future__ import annotations

import inspect
import queue

import aiortc
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcpeerconnection import RTCPeerConnection as PeerConnectionClass
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import TimestampMapper, decoder_worker

from live import aiortc_hooks


def _source(obj: object) -> str:
    return inspect.getsource(obj)  # type: ignore[arg-type]


def test_aiortc_is_the_pinned_minor_version():
    assert aiortc.__version__.startswith("1.16."), aiortc.__version__


@pytest.fixture
async def transceiver():
    pc = RTCPeerConnection()
    yield pc.addTransceiver("video", direction="sendrecv")
    await pc.close()


def test_receiver_queues_frames_for_its_decoder_and_the_tap_replaces_the_queue(transceiver):
    receiver = transceiver.receiver
    assert isinstance(receiver._RTCRtpReceiver__decoder_queue, queue.Queue)
    source = _source(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__decoder_queue.put((codec, encoded_frame))" in source
    assert "self.__timestamp_mapper.map(" in source
    assert "self.__decoder_queue.put(None)" in _source(RTCRtpReceiver)
    assert "input_q.get()" in _source(decoder_worker)
    assert "self.__decoder_queue" in _source(RTCRtpReceiver.receive)

    frames = []
    aiortc_hooks.tap_encoded_frames(receiver, frames.append)
    receiver._RTCRtpReceiver__decoder_queue.put(("codec", "frame"))
    receiver._RTCRtpReceiver__decoder_queue.put(None)
    assert frames == [("codec", "frame"), None]
    assert receiver._RTCRtpReceiver__decoder_queue.get() is None  # the thread can exit


def test_receiver_jitter_buffer_and_timestamp_mapper_can_be_replaced(transceiver):
    receiver = transceiver.receiver
    assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, JitterBuffer)
    assert isinstance(receiver._RTCRtpReceiver__timestamp_mapper, TimestampMapper)
    assert "self.__jitter_buffer.add(packet)" in _source(RTCRtpReceiver._handle_rtp_packet)

    aiortc_hooks.replace_jitter_buffer(receiver, JitterBuffer(capacity=256, is_video=True))
    aiortc_hooks.keep_publisher_timestamps(receiver)
    assert receiver._RTCRtpReceiver__jitter_buffer.capacity == 256
    assert receiver._RTCRtpReceiver__timestamp_mapper.map(4_000_000_000) == 4_000_000_000


async def test_receiver_sends_its_plis_through_a_method_the_relay_can_divert(transceiver):
    receiver = transceiver.receiver
    source = _source(RTCRtpReceiver._handle_rtp_packet)
    assert "await self._send_rtcp_pli(packet.ssrc)" in source
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters) == [
        "self",
        "media_ssrc",
    ]
    lost = []
    original = aiortc_hooks.intercept_picture_loss(receiver, lost.append)
    await receiver._send_rtcp_pli(1234)
    assert lost == [1234]
    assert original.__func__ is RTCRtpReceiver._send_rtcp_pli


async def test_sender_reports_reach_the_receivers_rtcp_handler(transceiver):
    assert "recipient._handle_rtcp_packet(packet)" in _source(RTCDtlsTransport._handle_rtcp_data)
    assert "add_recipient(self.ssrc_table.get(packet.ssrc))" in _source(RtpRouter.route_rtcp)
    reports = []
    aiortc_hooks.observe_sender_reports(transceiver.receiver, reports.append)
    from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

    packet = RtcpSrPacket(ssrc=1, sender_info=RtcpSenderInfo(1, 2, 3, 4))
    await transceiver.receiver._handle_rtcp_packet(packet)
    assert reports == [packet]


def test_transceiver_keeps_the_negotiated_codecs(transceiver):
    assert transceiver._codecs == []
    assert "transceiver._codecs = common" in _source(PeerConnectionClass.setRemoteDescription)
    assert aiortc_hooks.negotiated_codecs(transceiver) == []


def test_sender_ssrc_is_what_the_answer_announces(transceiver):
    assert "ssrc=transceiver.sender._ssrc" in _source(
        aiortc.rtcpeerconnection.create_media_description_for_transceiver
    )
    aiortc_hooks.force_sender_ssrc(transceiver.sender, 0xDEADBEEF)
    assert transceiver.sender._ssrc == 0xDEADBEEF


async def test_peer_connection_starts_senders_through_send_and_routes_their_rtcp(transceiver):
    connect = _source(PeerConnectionClass._RTCPeerConnection__connect)
    assert "await transceiver.sender.send(self.__localRtp(transceiver))" in connect
    assert "self.__started" in _source(RTCRtpSender.stop)
    assert "self._rtp_router.register_sender(sender, ssrc=sender._ssrc)" in _source(
        RTCDtlsTransport._register_rtp_sender
    )
    assert "add_recipient(self.senders.get(packet.media_ssrc))" in _source(RtpRouter.route_rtcp)

    sender = transceiver.sender
    seen = []

    async def on_rtcp(packet):
        seen.append(packet)

    aiortc_hooks.take_over_sender(sender, on_send=seen.append, on_rtcp=on_rtcp)
    await sender._handle_rtcp_packet("rtcp")
    assert seen == ["rtcp"]
    await sender.stop()  # never started: must not wait for tasks that do not exist


def test_sender_signals_keyframe_requests_through_send_keyframe(transceiver):
    assert "self._send_keyframe()" in _source(RTCRtpSender._handle_rtcp_packet)
    called = []
    aiortc_hooks.on_keyframe_request(transceiver.sender, lambda: called.append(True))
    transceiver.sender._send_keyframe()
    assert called == [True]


async def test_aiortc_sender_history_can_be_sized_to_answer_nacks_for_a_large_keyframe(
    transceiver,
):
    import aiortc.rtcrtpsender
    from aiortc.rtp import RtpPacket

    store = "self.__rtp_history[packet.sequence_number % RTP_HISTORY_SIZE] = ("
    assert store in _source(RTCRtpSender._run_rtp)
    lookup = "self.__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)"
    assert lookup in _source(RTCRtpSender._retransmit)
    assert "packet.sequence_number == sequence_number" in _source(RTCRtpSender._retransmit)
    assert aiortc.rtcrtpsender.RTP_HISTORY_SIZE == 128
    sender = transceiver.sender
    sent = []

    async def send_rtp(data: bytes) -> None:
        sent.append(RtpPacket.parse(data).sequence_number)

    sender.transport._send_rtp = send_rtp
    previous = aiortc_hooks.size_sender_history(1024)
    try:
        history = sender._RTCRtpSender__rtp_history
        for sequence_number in range(1000, 1300):  # a 300-packet keyframe, as _run_rtp stores it
            size = aiortc.rtcrtpsender.RTP_HISTORY_SIZE
            history[sequence_number % size] = RtpPacket(sequence_number=sequence_number)
        await sender._retransmit(1000)
    finally:
        assert aiortc_hooks.size_sender_history(previous) == 1024

    assert sent == [1000]
    assert aiortc.rtcrtpsender.RTP_HISTORY_SIZE == 128


def test_transport_exposes_its_srtp_session_and_ice_connection(transceiver):
    transport = transceiver.sender.transport
    assert transport._tx_srtp is None  # set by _setup_srtp after the handshake
    assert "self._tx_srtp = Session(tx_policy)" in _source(RTCDtlsTransport._setup_srtp)
    assert "tx_policy.allow_repeat_tx = True" in _source(RTCDtlsTransport._setup_srtp)
    connection = transport.transport._connection
    assert connection._nominated == {}
    import aioice.ice

    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in _source(
        aioice.ice.Connection.sendto
    )
    assert "self.transport.sendto(data, addr)" in _source(aioice.ice.StunProtocol.send_data)
    with pytest.raises(ConnectionError):
        aiortc_hooks.srtp_protector(transport)
    with pytest.raises(ConnectionError):
        aiortc_hooks.selected_datagram_path(transport)


def test_payloaders_make_rtp_payloads_from_whole_frames():
    vp8 = aiortc_hooks.packetize_vp8(b"\x10" + bytes(3000), picture_id=5)
    assert len(vp8) == 3 and all(len(p) <= 1300 for p in vp8)
    assert vp8[0][0] & 0x10 and not vp8[1][0] & 0x10  # S bit on the first packet only
    assert _source(Vp8Encoder._packetize)
    h264 = aiortc_hooks.packetize_h264(
        b"\x00\x00\x00\x01\x67\x42\x00\x1f\x00\x00\x00\x01\x68\xce\x00\x00\x00\x01\x65" + bytes(3000)
    )
    assert h264[0][0] & 0x1F == 24  # SPS+PPS in one STAP-A
    assert all(p[0] & 0x1F == 28 for p in h264[1:])  # the IDR in FU-As
    assert _source(H264Encoder._split_bitstream)


def _rtp(sequence_number: int, timestamp: int, marker: int = 0, data: bytes = b"x"):
    from aiortc.rtp import RtpPacket

    packet = RtpPacket(sequence_number=sequence_number, timestamp=timestamp, marker=marker)
    packet._data = data  # what the receiver sets after depayloading
    return packet


def test_jitter_buffer_delegates_frame_assembly_to_remove_frame():
    assert "self._remove_frame(packet.sequence_number)" in _source(JitterBuffer.add)
    assert {"_origin", "_packets", "_capacity"} <= set(vars(JitterBuffer(capacity=16)))


def test_marker_jitter_buffer_releases_a_frame_at_its_marker_bit():
    buffer = aiortc_hooks.MarkerJitterBuffer(capacity=16, is_video=True)

    assert buffer.add(_rtp(10, 3000, data=b"a")) == (False, None)
    _, frame = buffer.add(_rtp(11, 3000, marker=1, data=b"b"))
    assert (frame.data, frame.timestamp) == (b"ab", 3000)

    # a hole holds the frame back until the missing packet comes
    assert buffer.add(_rtp(13, 6000, marker=1, data=b"d")) == (False, None)
    _, frame = buffer.add(_rtp(12, 6000, data=b"c"))
    assert frame.data == b"cd"


def test_marker_jitter_buffer_falls_back_to_aiortcs_rule_without_markers():
    buffer = aiortc_hooks.MarkerJitterBuffer(capacity=16, is_video=True)
    buffer.add(_rtp(1, 100, data=b"a"))
    buffer.add(_rtp(2, 100, data=b"b"))

    _, frame = buffer.add(_rtp(3, 200, data=b"c"))

    assert (frame.data, frame.timestamp) == (b"ab", 100)


# Payloads as aiortc's payloaders cut them, depayloaded as the receiver does.
_VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
_H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
_VP8_KEYFRAME = b"\x50\x42\x00\x9d\x01\x2a\x40\x01\xf0\x00" + bytes(3000)  # 320x240
_VP8_DELTA = b"\x31\x02\x00" + bytes(40)
_H264_KEYFRAME = (
    b"\x00\x00\x00\x01\x67\x42\xc0\x1e\xda\x05\x07\xc4"  # SPS
    b"\x00\x00\x00\x01\x68\xce\x3c\x80"  # PPS
    b"\x00\x00\x00\x01\x65\x88" + bytes(3000)  # IDR slice, in FU-As
)
_H264_DELTA = b"\x00\x00\x00\x01\x41\x9a" + bytes(40)


def _packets(codec, frame: bytes, first: int, timestamp: int) -> list:
    from aiortc.codecs import depayload
    from aiortc.rtp import RtpPacket

    if codec is _VP8:
        payloads = aiortc_hooks.packetize_vp8(frame, picture_id=first)
    else:
        payloads = aiortc_hooks.packetize_h264(frame)
    packets = []
    for index, payload in enumerate(payloads):
        packet = RtpPacket(
            payload_type=codec.payloadType,
            sequence_number=first + index,
            timestamp=timestamp,
            marker=int(index == len(payloads) - 1),
        )
        packet.payload = payload
        packet._data = depayload(codec, payload)
        packets.append(packet)
    return packets


def _feed(buffer, packets) -> tuple[bool, list[bytes]]:
    """Add packets in order: whether picture loss was reported, the frames released."""
    lost, frames = False, []
    for packet in packets:
        pli, frame = buffer.add(packet)
        lost = lost or pli
        if frame is not None:
            frames.append(frame.data)
    return lost, frames


def _buffer_for(codec) -> aiortc_hooks.MarkerJitterBuffer:
    buffer = aiortc_hooks.MarkerJitterBuffer(capacity=64, is_video=True)
    buffer.codecs = {codec.payloadType: codec}  # replace_jitter_buffer binds the receiver's
    return buffer


@pytest.mark.parametrize("lost_packets", [1, 2])
def test_marker_jitter_buffer_drops_a_first_vp8_frame_that_lost_its_head(lost_packets):
    buffer = _buffer_for(_VP8)
    keyframe = _packets(_VP8, _VP8_KEYFRAME, 100, 3000)
    assert len(keyframe) == 3

    lost, frames = _feed(buffer, keyframe[lost_packets:])

    assert lost and frames == []  # picture loss: the relay asks for a keyframe
    assert buffer.headless_frames == 1


@pytest.mark.parametrize("lost_packets", [1, 2])  # the SPS/PPS STAP-A; and the IDR's start
def test_marker_jitter_buffer_drops_a_first_h264_idr_that_lost_its_head(lost_packets):
    buffer = _buffer_for(_H264)
    keyframe = _packets(_H264, _H264_KEYFRAME, 100, 3000)
    assert len(keyframe) == 4

    lost, frames = _feed(buffer, keyframe[lost_packets:])

    assert lost and frames == []
    assert buffer.headless_frames == 1


@pytest.mark.parametrize("codec", [_VP8, _H264], ids=["VP8", "H264"])
def test_marker_jitter_buffer_releases_the_keyframe_after_a_headless_start(codec):
    keyframe_bytes, delta_bytes = (
        (_VP8_KEYFRAME, _VP8_DELTA) if codec is _VP8 else (_H264_KEYFRAME, _H264_DELTA)
    )
    buffer = _buffer_for(codec)
    headless = _packets(codec, keyframe_bytes, 100, 3000)
    _feed(buffer, headless[1:])

    keyframe = _packets(codec, keyframe_bytes, 100 + len(headless), 6000)
    delta = _packets(codec, delta_bytes, 100 + 2 * len(headless), 9000)
    lost, frames = _feed(buffer, keyframe + delta)

    assert not lost
    assert frames == [keyframe_bytes, delta_bytes]


@pytest.mark.parametrize("codec", [_VP8, _H264], ids=["VP8", "H264"])
def test_marker_jitter_buffer_reports_picture_loss_until_a_stream_that_starts_late_has_a_keyframe(
    codec,
):
    # the first keyframe was lost whole: the stream starts at delta frames, which the
    # relay's keyframe gate holds back, and which aiortc's decoder would fail on
    keyframe_bytes, delta_bytes = (
        (_VP8_KEYFRAME, _VP8_DELTA) if codec is _VP8 else (_H264_KEYFRAME, _H264_DELTA)
    )
    buffer = _buffer_for(codec)
    keyframe = _packets(codec, keyframe_bytes, 102, 9000)

    first_lost, first = _feed(buffer, _packets(codec, delta_bytes, 100, 3000))
    second_lost, second = _feed(buffer, _packets(codec, delta_bytes, 101, 6000))
    keyframe_lost, _ = _feed(buffer, keyframe)
    after_lost, after = _feed(buffer, _packets(codec, delta_bytes, 102 + len(keyframe), 12000))

    assert first == second == after == [delta_bytes]  # released, as aiortc would
    assert first_lost and second_lost
    assert not keyframe_lost and not after_lost
    assert buffer.headless_frames == 0


def test_marker_jitter_buffer_does_not_examine_frames_that_follow_a_released_frame():
    # continuity proves where a frame starts: an IDR without SPS in its own access
    # unit (parameter sets sent earlier) passes, as with aiortc's buffer
    buffer = _buffer_for(_H264)
    _feed(buffer, _packets(_H264, _H264_KEYFRAME, 100, 3000))
    idr_only = b"\x00\x00\x00\x01\x65\x88" + bytes(3000)

    lost, frames = _feed(buffer, _packets(_H264, idr_only, 104, 6000))

    assert not lost and frames == [idr_only]


def test_receiver_nack_window_follows_the_jitter_buffer(transceiver):
    from aiortc.rtcrtpreceiver import NackGenerator
    from aiortc.rtp import RtpPacket

    receiver = transceiver.receiver
    handle = _source(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__nack_generator.add(packet)" in handle
    assert "sorted(self.__nack_generator.missing)" in handle
    assert "self.truncate()" in _source(NackGenerator.add)
    assert "RTP_HISTORY_SIZE" in _source(NackGenerator.truncate)
    assert isinstance(receiver._RTCRtpReceiver__nack_generator, NackGenerator)

    aiortc_hooks.replace_jitter_buffer(
        receiver, aiortc_hooks.MarkerJitterBuffer(capacity=256, is_video=True)
    )
    generator = receiver._RTCRtpReceiver__nack_generator
    generator.add(RtpPacket(sequence_number=1000))
    generator.add(RtpPacket(sequence_number=1002))  # 1001 is missing
    generator.add(RtpPacket(sequence_number=1002 + 200))  # aiortc forgets 1001 past 128

    assert 1001 in generator.missing
    for sequence_number in range(1002 + 300, 1002 + 316):  # checked every 16th packet
        generator.add(RtpPacket(sequence_number=sequence_number))
    assert 1001 not in generator.missing  # the jitter buffer has given up on it too


def test_receiver_fills_its_codec_table_in_place_for_the_jitter_buffer(transceiver):
    receiver = transceiver.receiver
    assert "self.__codecs[codec.payloadType] = codec" in _source(RTCRtpReceiver.receive)
    assert "codec = self.__codecs.get(packet.payload_type)" in _source(
        RTCRtpReceiver._handle_rtp_packet
    )
    buffer = aiortc_hooks.MarkerJitterBuffer(capacity=256, is_video=True)

    aiortc_hooks.replace_jitter_buffer(receiver, buffer)

    assert buffer.codecs is receiver._RTCRtpReceiver__codecs


def test_audio_pass_through_releases_every_packet_and_drops_late_ones():
    audio = aiortc_hooks.AudioPassThrough()
    assert "self.__jitter_buffer.add(packet)" in _source(RTCRtpReceiver._handle_rtp_packet)

    assert audio.add(_rtp(65535, 960, data=b"a"))[1].data == b"a"
    assert audio.add(_rtp(1, 2880, data=b"c"))[1].data == b"c"  # 0 lost: not waited for
    assert audio.add(_rtp(0, 1920, data=b"b")) == (False, None)  # late
    assert audio.add(_rtp(1, 2880, data=b"c")) == (False, None)  # repeated


# --- ICE host candidates (gather_host_candidates) ---------------------------------------


def test_aioice_gathers_host_sockets_per_component_in_a_method_the_relay_can_replace():
    import aioice.ice
    from aiortc.rtcicetransport import RTCIceGatherer

    assert "self._connection = Connection(" in _source(RTCIceGatherer)
    assert "await self._connection.gather_candidates()" in _source(RTCIceGatherer.gather)
    gather = _source(aioice.ice.Connection.gather_candidates)
    assert "self.get_component_candidates(component=component, addresses=addresses)" in gather
    per_component = _source(aioice.ice.Connection.get_component_candidates)
    assert "local_addr=(address, 0)" in per_component  # host sockets: any port
    assert "server_reflexive_candidate(protocol, self.stun_server)" in per_component
    assert "relayed_candidate(" in per_component
    assert list(inspect.signature(aioice.ice.Connection.get_component_candidates).parameters) == [
        "self", "component", "addresses", "timeout",
    ]
    assert list(inspect.signature(aioice.ice.server_reflexive_candidate).parameters) == [
        "protocol", "stun_server",
    ]
    assert list(inspect.signature(aioice.ice.StunProtocol).parameters) == ["receiver"]
    # aioice sends through the protocol's transport, never from the candidate's address
    assert "self.transport.sendto(data, addr)" in _source(aioice.ice.StunProtocol.send_data)
    assert "for protocol in self._protocols:\n            await protocol.close()" in _source(
        aioice.ice.Connection.close
    )


async def test_host_candidates_can_be_bound_in_a_port_range_and_announce_another_address():
    """Run in the test namespace: the host address aioice finds there is 127.0.0.2."""
    from live.ice_sockets import PortRange

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    ports = PortRange(61300, 61309)
    aiortc_hooks.gather_host_candidates(pc, bind=ports.bind, announce=lambda bound: "198.51.100.7")
    try:
        await pc.setLocalDescription(await pc.createOffer())

        connection = pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection
        candidates = connection.local_candidates
        assert candidates and {c.host for c in candidates} == {"198.51.100.7"}
        assert all(c.type == "host" and c.port in ports for c in candidates)
        bound = [p.transport.get_extra_info("sockname")[:2] for p in connection._protocols]
        assert [port for _, port in bound] == [c.port for c in candidates]
        assert "198.51.100.7" not in {host for host, _ in bound}  # still the private address
        assert "c=IN IP4 198.51.100.7" in pc.localDescription.sdp
    finally:
        await pc.close()


async def test_offerer_gets_its_tracks_in_set_remote_description_before_receiving():
    # Edges (Publisher.pull) are the offerer: the taps and jitter buffers are installed
    # in the "track" handler, which must run before the receiver handles any RTP, as it
    # does for an answerer. RTCPeerConnection.setRemoteDescription emits the track
    # events; RTCRtpReceiver.receive() runs later, from __connect once DTLS is up.
    edge, origin = RTCPeerConnection(), RTCPeerConnection()
    try:
        edge.addTransceiver("video", direction="recvonly")
        seen = []
        receiver = edge.getTransceivers()[0].receiver
        edge.on("track", lambda track: seen.append(receiver._RTCRtpReceiver__started))
        await edge.setLocalDescription(await edge.createOffer())
        await origin.setRemoteDescription(edge.localDescription)
        origin.getTransceivers()[0].sender.replaceTrack(aiortc.VideoStreamTrack())
        origin.getTransceivers()[0].direction = "sendonly"
        await origin.setLocalDescription(await origin.createAnswer())
        await edge.setRemoteDescription(origin.localDescription)
        assert seen == [False]
    finally:
        await edge.close()
        await origin.close()
