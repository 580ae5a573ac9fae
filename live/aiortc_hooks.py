"""Every place the relay relies on aiortc (and aioice) internals, in one module.

aiortc 1.16 has no public API for encoded frames, for sending pre-built RTP, or for the
selected ICE pair, so the relay reaches into private state. Each function below names
the internal it relies on; ``tests/live/test_aiortc_hooks.py`` fails if any of them
changes shape (pyproject pins ``aiortc>=1.16,<1.17`` for the same reason).

Nothing here runs per packet except the objects it installs; the functions are called
once per peer connection.

The receiver hooks are installed from the peer connection's "track" handler. That is
early enough only because aiortc emits "track" inside ``setRemoteDescription`` and
starts ``RTCRtpReceiver.receive()`` later, from ``__connect`` once DTLS is up, both
when the relay answers (a WHIP publisher) and when it offers (an edge pulling from its
origin, ``Publisher.pull``); ``test_offerer_gets_its_tracks_in_set_remote_description_
before_receiving`` guards the second case.
"""

from __future__ import annotations

import asyncio
import ipaddress
import queue
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Optional

import aioice.ice
import aiortc.rtcrtpsender
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.turn import UDP_SOCKET_BUFFER_SIZE
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import AnyRtcpPacket, RtcpSrPacket, RtpPacket
from aiortc.utils import uint16_add, uint16_gt

from live.keyframes import keyframe_detector

FrameSink = Callable[[Optional[tuple[RTCRtpCodecParameters, JitterFrame]]], None]


# --- publisher side: RTCRtpReceiver -----------------------------------------------------


class _EncodedFrameTap:
    """Stands in for ``RTCRtpReceiver.__decoder_queue`` (a ``queue.Queue``).

    ``RTCRtpReceiver._handle_rtp_packet`` calls ``self.__decoder_queue.put((codec,
    frame))`` on the event loop for every reassembled frame; we hand the frame to the
    relay instead. The decoder thread that ``receive()`` starts calls ``get()`` on the
    same object and blocks until ``__stop_decoder`` puts ``None``, which we pass through
    so that shutdown (thread join, track end) works unchanged.
    """

    __slots__ = ("_sink", "_stop")

    def __init__(self, sink: FrameSink) -> None:
        self._sink = sink
        self._stop: queue.Queue[None] = queue.Queue()

    def put(self, item: Any) -> None:
        if item is None:
            self._stop.put(None)
        self._sink(item)

    def get(self) -> None:
        return self._stop.get()


def tap_encoded_frames(receiver: RTCRtpReceiver, sink: FrameSink) -> None:
    """Route the receiver's reassembled frames to ``sink`` instead of the decoder.

    Relies on: ``RTCRtpReceiver.__decoder_queue`` (name-mangled), read by ``receive()``
    when it starts the decoder thread and by ``_handle_rtp_packet``/``__stop_decoder``.
    Must be called before ``receive()``, i.e. in ``pc.on("track")``. ``sink`` is called
    on the event loop with ``(codec, JitterFrame)`` and finally with ``None``.
    """
    receiver._RTCRtpReceiver__decoder_queue = _EncodedFrameTap(sink)  # type: ignore[attr-defined]


def replace_jitter_buffer(receiver: RTCRtpReceiver, buffer: Any) -> None:
    """Relies on: ``RTCRtpReceiver.__jitter_buffer`` (512 packets for video, 16 with
    prefetch 4 for audio). A lost publisher packet that NACK cannot repair stalls every
    later frame until the buffer overflows, so a smaller video buffer bounds the freeze;
    audio has no NACK, so prefetching only adds latency.

    A ``MarkerJitterBuffer`` is also given the receiver's payload-type table, to read
    each frame's payload descriptor (``RTCRtpReceiver.__codecs``: the dict ``receive()``
    fills in place, later than this runs), and the receiver's NACK window is widened to
    the buffer's capacity (``RTCRtpReceiver.__nack_generator``, see ``NackWindow``).
    """
    private: Any = receiver  # name-mangled attributes
    private._RTCRtpReceiver__jitter_buffer = buffer
    if isinstance(buffer, MarkerJitterBuffer):
        buffer.codecs = private._RTCRtpReceiver__codecs
        if private._RTCRtpReceiver__nack_generator is not None:  # None for audio
            private._RTCRtpReceiver__nack_generator = NackWindow(buffer.capacity)


class NackWindow(NackGenerator):
    """aiortc's ``NackGenerator``, asking for a missing packet for as long as the
    jitter buffer would wait for it.

    aiortc NACKs the packets missing when a new gap appears and lists them again at the
    next gap until the newest is ``RTP_HISTORY_SIZE`` (128) packets past them. The relay's
    video buffer waits for a missing packet until ``capacity`` (256) packets have
    arrived, so a packet whose retransmission was lost early in a keyframe of over 128
    packets (~150 KB) was no longer asked for while the whole stream stalled behind it.
    Relies on: ``NackGenerator.add()`` calling ``self.truncate()``, its ``max_seq`` and
    ``missing``, and ``_handle_rtp_packet`` sending ``sorted(self.__nack_generator.
    missing)`` when ``add()`` returns True.
    """

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window
        self._adds = 0

    def truncate(self) -> None:
        # Called for every packet received; walking a long missing set each time cost
        # 45 % of a starved simulcast ingest (profiled). Every 16th packet is enough:
        # an entry outlives its window by at most 16 packets.
        self._adds += 1
        if self._adds & 15 or not self.missing:
            return
        if self.max_seq is not None:
            oldest = uint16_add(self.max_seq, -self.window)
            for sequence_number in list(self.missing):
                if uint16_gt(oldest, sequence_number):
                    self.missing.discard(sequence_number)


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, but a frame leaves at its marker bit, and never
    without its first packet.

    aiortc releases a frame when the first packet of the *next* frame arrives, one
    frame interval (33 ms at 30 fps) late. VP8 (RFC 7741) and H.264 (RFC 6184) senders
    set the marker on the last packet of a frame, so once every packet from the frame's
    first to its marked last one is present, the frame is complete. aiortc's rule stays
    as the fallback for senders that do not mark frames.

    The buffer starts at the first packet that arrives (and restarts wherever aiortc's
    ``add()`` moves ``_origin`` after an overflow or a jump in sequence numbers), and
    aiortc's NACKs cover only packets after the first one received. So when the stream's
    first packet is lost, the packets after it would leave as a frame without its
    head: a VP8 "keyframe" without its start code and size, or an H.264 IDR without the
    SPS/PPS that came in the packet before it. Where a frame does not begin right after
    a frame this buffer released, its first packet must show it starts the frame (VP8:
    S bit and partition 0; H.264: not a continuing FU-A fragment, nor an IDR slice or
    PPS, which in a keyframe come after an SPS); otherwise the frame is dropped
    (``headless_frames``) and ``add()`` reports picture loss, so the relay asks for a
    keyframe at once instead of waiting for the publisher's next one (a browser sends
    one only when asked). After such a restart, every frame released before a
    keyframe reports picture loss too: the pictures it refers to were lost (say, the
    first keyframe lost whole). aiortc's own decoder would fail on each of them and
    aiortc would send a PLI each time; the relay's frame tap bypasses that decoder, and
    its ``KeyframeRequester`` turns the reports into rate-limited PLIs (repeating an
    unanswered one when the next report comes late enough). Frames that follow a
    released frame are not examined once a keyframe has left.

    Relies on: ``JitterBuffer``'s ``_origin``, ``_packets``, ``_capacity``, ``remove()``
    and ``_remove_frame()`` (called by ``add()``, which returns ``(pli_flag, frame)``),
    the depayloaded ``RtpPacket._data`` the receiver sets, and ``RtpPacket.payload``
    still holding the payload descriptor.
    """

    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False) -> None:
        super().__init__(capacity, prefetch=prefetch, is_video=is_video)
        # payload type -> codec, to read payload descriptors; replace_jitter_buffer
        # binds the receiver's table. Frames of an unknown payload type pass unexamined.
        self.codecs: dict[int, RTCRtpCodecParameters] = {}
        self.headless_frames = 0
        # the sequence number right after the last frame released: where a frame is
        # known to start. Anywhere else (the first packet, aiortc's resets) it is not.
        self._frame_start: Optional[int] = None
        self._awaiting_keyframe = False  # restarted, and no keyframe released since
        self._picture_lost = False

    def add(self, packet: RtpPacket) -> tuple[bool, Optional[JitterFrame]]:
        pli_flag, frame = super().add(packet)
        if self._picture_lost:
            self._picture_lost = False
            pli_flag = True
        return pli_flag, frame

    def _remove_frame(self, sequence_number: int) -> Optional[JitterFrame]:
        capacity = self._capacity
        while True:
            packets = []
            timestamp = None
            origin = self._origin
            assert origin is not None
            for count in range(capacity):
                packet = self._packets[(origin + count) % capacity]
                if packet is None:
                    return None
                if timestamp is None:
                    timestamp = packet.timestamp
                elif packet.timestamp != timestamp:
                    end = count
                    break
                packets.append(packet)
                if packet.marker:
                    end = count + 1
                    break
            else:
                return None
            restart = origin != self._frame_start
            self.remove(end)
            self._frame_start = self._origin
            first = packets[0]
            if restart:
                self._awaiting_keyframe = True
                if not self._starts_frame(first):
                    self.headless_frames += 1
                    self._picture_lost = True
                    continue  # what follows starts a frame: look at it
            data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
            frame = JitterFrame(data, timestamp)
            if self._awaiting_keyframe:
                if self._is_keyframe(first, frame.data):
                    self._awaiting_keyframe = False
                else:
                    self._picture_lost = True
            return frame

    def _starts_frame(self, packet: RtpPacket) -> bool:
        codec = self.codecs.get(packet.payload_type)
        name = codec.name.lower() if codec is not None else None
        if name == "vp8":
            return _vp8_starts_frame(packet.payload)
        if name == "h264":
            return _h264_may_start_frame(packet.payload)
        return True

    def _is_keyframe(self, packet: RtpPacket, data: bytes) -> bool:
        codec = self.codecs.get(packet.payload_type)
        return codec is None or keyframe_detector(codec.name)(data)


def _vp8_starts_frame(payload: bytes) -> bool:
    """RFC 7741 4.2: S (start of a partition) set and PID (partition index) 0."""
    return payload[0] & 0x17 == 0x10


def _h264_may_start_frame(payload: bytes) -> bool:
    """Whether an RTP packet (RFC 6184) can be the first of an access unit a decoder
    might use: not an FU-A fragment after the first, and not a PPS or IDR slice as the
    first NAL unit (every keyframe's access unit begins with an SPS before them, so
    the packet carrying it was lost). A delta frame's slice passes: the relay's keyframe
    gate holds delta frames after a loss anyway."""
    nal_type = payload[0] & 0x1F
    if nal_type == 28:  # FU-A: the fragment's own header says start, and the NAL type
        if not payload[1] & 0x80:
            return False
        nal_type = payload[1] & 0x1F
    elif nal_type == 24:  # STAP-A: the first aggregated NAL unit's header
        nal_type = payload[3] & 0x1F if len(payload) > 3 else 0
    return nal_type != 5 and nal_type != 8


class AudioPassThrough:
    """Stands in for the audio ``JitterBuffer``: every Opus RTP packet is a whole frame
    (RFC 7587), so it leaves at once. aiortc holds 4 frames (80 ms) and, audio having no
    NACK, stalls up to 16 packets behind a lost one. A packet older than the last one
    released is dropped: the relay renumbers packets, and the viewer's own jitter buffer
    conceals a missing frame. Relies on: ``_handle_rtp_packet`` calling
    ``self.__jitter_buffer.add(packet)`` -> ``(pli_flag, frame or None)``.
    """

    capacity = 16

    def __init__(self) -> None:
        self._last: Optional[int] = None

    def add(self, packet: Any) -> tuple[bool, Optional[JitterFrame]]:
        sequence_number = packet.sequence_number
        last = self._last
        if last is not None and (sequence_number - last) & 0xFFFF >= 0x8000:
            return False, None  # late or repeated
        if last is not None and sequence_number == last:
            return False, None
        self._last = sequence_number
        return False, JitterFrame(packet._data, packet.timestamp)


class _IdentityTimestamps:
    """Stands in for ``aiortc.rtcrtpreceiver.TimestampMapper``: keeps the publisher's own
    32-bit RTP timestamps, so the relay can forward them and the publisher's RTCP Sender
    Reports (RTP time <-> NTP) stay valid for the viewers."""

    __slots__ = ()

    def map(self, timestamp: int) -> int:
        return timestamp


def keep_publisher_timestamps(receiver: RTCRtpReceiver) -> None:
    """Relies on: ``RTCRtpReceiver.__timestamp_mapper`` (name-mangled), whose ``map()``
    ``_handle_rtp_packet`` applies to each frame before queueing it."""
    receiver._RTCRtpReceiver__timestamp_mapper = _IdentityTimestamps()  # type: ignore[attr-defined]


def intercept_picture_loss(
    receiver: RTCRtpReceiver, on_loss: Callable[[int], None]
) -> Callable[[int], Awaitable[None]]:
    """Divert the PLIs aiortc sends on its own, return the original sender.

    Relies on: ``RTCRtpReceiver._send_rtcp_pli(media_ssrc)`` (private coroutine), which
    ``_handle_rtp_packet`` calls through ``self`` when the jitter buffer drops packets
    (and on decoder errors, which cannot happen with the tap). The relay treats that as
    "the frame chain is broken": it freezes video until the next keyframe and sends the
    PLI itself, rate-limited. The returned coroutine function sends a PLI for real.
    """
    original = receiver._send_rtcp_pli

    async def diverted(media_ssrc: int) -> None:
        on_loss(media_ssrc)

    receiver._send_rtcp_pli = diverted  # type: ignore[method-assign]
    return original


def observe_sender_reports(
    receiver: RTCRtpReceiver, on_sr: Callable[[RtcpSrPacket], None]
) -> None:
    """Relies on: ``RTCDtlsTransport._handle_rtcp_data`` calling
    ``recipient._handle_rtcp_packet(packet)`` on the receiver for the publisher's SRs."""
    original = receiver._handle_rtcp_packet

    async def observed(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpSrPacket):
            on_sr(packet)
        await original(packet)

    receiver._handle_rtcp_packet = observed  # type: ignore[method-assign]


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """Relies on: ``RTCRtpTransceiver._codecs``, set by ``setRemoteDescription`` to the
    common codecs (first = the one media is sent with)."""
    return list(transceiver._codecs)


# --- viewer side: RTCRtpSender ----------------------------------------------------------


def force_sender_ssrc(sender: RTCRtpSender, ssrc: int) -> None:
    """Relies on: ``RTCRtpSender._ssrc``, read by ``createAnswer`` for ``a=ssrc`` and by
    ``RTCDtlsTransport._register_rtp_sender`` to route RTCP. Every viewer of a track gets
    the track's SSRC, so one set of RTP packets serves them all."""
    sender._ssrc = ssrc


def take_over_sender(
    sender: RTCRtpSender,
    on_send: Callable[[RTCRtpSendParameters], None],
    on_rtcp: Callable[[AnyRtcpPacket], Awaitable[None]],
) -> None:
    """Keep aiortc's sender for negotiation only; the relay sends the media itself.

    Relies on:
    - ``RTCPeerConnection.__connect`` calling ``transceiver.sender.send(parameters)``
      once DTLS is connected. Our replacement registers the sender with the transport's
      RTP router (``RTCDtlsTransport._register_rtp_sender``) so the viewer's RTCP still
      reaches it, and never starts the sender's encoder or RTCP tasks.
    - ``RTCRtpSender.stop()`` doing nothing while its private ``__started`` is False.
    - the RTP router calling ``sender._handle_rtcp_packet(packet)`` for RR, NACK, PLI,
      FIR and REMB aimed at the sender's SSRC.
    """

    async def send(parameters: RTCRtpSendParameters) -> None:
        sender.transport._register_rtp_sender(sender, parameters)
        on_send(parameters)

    sender.send = send  # type: ignore[method-assign]
    sender._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign,assignment]


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Relies on: ``RTCRtpSender._send_keyframe()``, called for PLI/FIR. On the
    pre-encoded (``av.Packet``) path aiortc only sets a flag that path ignores, so a
    peer that sends pre-encoded media must learn about keyframe requests this way.
    Used by the benchmark's publisher."""
    original = sender._send_keyframe

    def requested() -> None:
        original()
        callback()

    sender._send_keyframe = requested  # type: ignore[method-assign]


# --- publisher side when aiortc publishes (tests, bench/relay.py) -----------------------


def size_sender_history(packets: int) -> int:
    """Every aiortc ``RTCRtpSender`` in this process keeps its last ``packets`` RTP
    packets to answer NACKs, instead of ``RTP_HISTORY_SIZE`` (128); returns the size
    before, so a caller can put it back.

    A sender sends all of a frame's packets without yielding to the event loop (none
    of the awaits in ``_run_rtp`` -> ``RTCDtlsTransport._send_rtp`` -> aioice ``sendto``
    suspends), so every NACK for a frame arrives after the whole frame has gone out.
    With 128 packets kept, a packet lost in the first n - 128 of an n-packet keyframe
    (over ~166 KB at aiortc's 1300-byte payloads) can never be repaired, and at a lossy
    start the first keyframe, and each one a PLI brings after it, is lost whole. For
    aiortc publishers only: browsers keep at least 600 packets (libwebrtc), and the
    relay's own senders are taken over and keep none (``PacketHistory`` answers).

    Relies on: ``aiortc.rtcrtpsender.RTP_HISTORY_SIZE``, a module global that
    ``_run_rtp`` (storing) and ``_retransmit`` (looking up, then checking the sequence
    number) read at each use as the modulus of the ``__rtp_history`` dict, so any size
    works and a change mid-stream only loses old entries. Process-wide.
    """
    previous: int = aiortc.rtcrtpsender.RTP_HISTORY_SIZE
    aiortc.rtcrtpsender.RTP_HISTORY_SIZE = packets
    return previous


# --- transport: SRTP session and the selected ICE pair ---------------------------------


def srtp_protector(transport: RTCDtlsTransport) -> Any:
    """Relies on: ``RTCDtlsTransport._tx_srtp``, the ``pylibsrtp.Session`` set up after
    the DTLS handshake (``allow_repeat_tx`` on, so a NACKed packet can be re-protected).
    Returns the session; the relay calls ``protect`` / ``protect_rtcp`` on it."""
    session = transport._tx_srtp
    if session is None:
        raise ConnectionError("DTLS transport has no SRTP session yet")
    return session


class DatagramPath:
    """Where to send a viewer's packets: a socket and the remote address. ``sendmsg`` is
    the socket's, for UDP segmentation offload, or None on the TURN path."""

    __slots__ = ("sendto", "sendmsg", "remote_addr", "_sock")

    def __init__(
        self,
        sendto: Callable[[bytes, tuple[str, int]], Any],
        remote_addr: tuple[str, int],
        sock: Optional[socket.socket],
    ) -> None:
        self.sendto = sendto
        self.sendmsg = sock.sendmsg if sock is not None else None
        self.remote_addr = remote_addr
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def selected_datagram_path(transport: RTCDtlsTransport) -> DatagramPath:
    """The socket and address of the ICE pair in use, for non-blocking ``sendto``.

    Relies on: ``RTCIceTransport._connection`` (the aioice ``Connection``) and aioice's
    ``Connection._nominated[component]`` -> ``CandidatePair`` with ``.protocol``
    (a ``StunProtocol`` whose ``.transport`` is the asyncio datagram transport) and
    ``.remote_addr``. For host/srflx pairs we duplicate the socket (public
    ``TransportSocket.dup()``) and ``sendto`` on it directly: no asyncio buffer, so a
    full kernel buffer raises ``BlockingIOError`` and the packet is dropped and counted.
    For TURN relay pairs we use the transport's own ``sendto``, which wraps data for TURN.
    The caller owns the result and must ``close()`` it.
    """
    pair = transport.transport._connection._nominated.get(1)
    if pair is None:
        raise ConnectionError("ICE has no selected pair")
    datagram_transport = pair.protocol.transport
    if pair.local_candidate.type == "relay":
        return DatagramPath(datagram_transport.sendto, pair.remote_addr, None)
    sock = datagram_transport.get_extra_info("socket").dup()
    sock.setblocking(False)
    return DatagramPath(sock.sendto, pair.remote_addr, sock)


def selected_pair_key(transport: RTCDtlsTransport) -> Any:
    """An identity for the pair in use, to notice when ICE switches pairs (the remote
    nominated another one after a network change). Relies on the same aioice internals
    as ``selected_datagram_path``."""
    pair = transport.transport._connection._nominated.get(1)
    return None if pair is None else (id(pair.protocol), pair.remote_addr)


# --- ICE host candidates: port range and announced address --------------------------


def _ice_connections(pc: Any) -> list[aioice.ice.Connection]:
    """The aioice connections of a peer connection's transports (one when bundled).
    Relies on: ``RTCIceGatherer._connection``."""
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    connections: dict[int, aioice.ice.Connection] = {}
    for dtls in transports:
        connection = dtls.transport.iceGatherer._connection
        connections[id(connection)] = connection
    return list(connections.values())


def gather_host_candidates(
    pc: Any,
    *,
    bind: Callable[[str], socket.socket],
    announce: Callable[[str], str],
) -> None:
    """Open the peer connection's ICE host sockets with ``bind(address)`` (a UDP port
    range) and announce each at ``announce(bound address)`` (a public IP).

    Relies on: aioice's ``Connection.gather_candidates`` calling
    ``self.get_component_candidates(component=..., addresses=...)`` once per component,
    and that method binding one host socket per address at port 0, then querying STUN
    for each IPv4 host socket (``server_reflexive_candidate``) and allocating on TURN
    (with no host address involved). We replace the method on each connection: host
    sockets come from ``bind`` and are built into ``StunProtocol``s and host
    ``Candidate``s exactly as aioice builds them (SO_RCVBUF, foundation, priority), with
    only the candidate's announced address changed; STUN goes through aioice's own
    ``server_reflexive_candidate``; the original method, given no addresses, still does
    TURN. The socket stays bound to the private address: a 1:1 NAT maps the public one
    to it, and aioice sends from ``protocol.transport``, never from the candidate.
    Call between ``setRemoteDescription`` and ``setLocalDescription`` (which gathers).
    """
    for connection in _ice_connections(pc):
        _replace_component_gathering(connection, bind, announce)


def _replace_component_gathering(
    connection: aioice.ice.Connection,
    bind: Callable[[str], socket.socket],
    announce: Callable[[str], str],
) -> None:
    original = connection.get_component_candidates

    async def get_component_candidates(
        component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        loop = asyncio.get_running_loop()
        candidates: list[Candidate] = []
        host_protocols: list[aioice.ice.StunProtocol] = []
        for address in addresses:
            try:
                sock = bind(address)
            except OSError:
                continue  # as aioice does when an address cannot be bound
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_SOCKET_BUFFER_SIZE)
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: aioice.ice.StunProtocol(connection), sock=sock
                )
            except BaseException:
                sock.close()
                raise
            # Owned by the connection at once, so close() releases the port even if a
            # later bind fails and negotiation is abandoned.
            connection._protocols.append(protocol)
            host_protocols.append(protocol)
            bound_host, port = protocol.transport.get_extra_info("sockname")[:2]
            host = announce(bound_host)
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            candidates.append(protocol.local_candidate)

        # TURN (relayed candidates) by aioice's own code, given no host address; it runs
        # alongside the STUN queries, as in aioice.
        relayed = asyncio.ensure_future(
            original(component=component, addresses=[], timeout=timeout)
        )
        stun_server = connection.stun_server
        reflexive = [
            asyncio.ensure_future(aioice.ice.server_reflexive_candidate(protocol, stun_server))
            for protocol in host_protocols
            if stun_server is not None
            and ipaddress.ip_address(protocol.local_candidate.host).version == 4
        ]
        if reflexive:
            done, pending = await asyncio.wait(reflexive, timeout=timeout)
            for task in pending:
                task.cancel()
            candidates += [t.result()[0] for t in done if t.exception() is None]
        candidates += await relayed
        return candidates

    connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


# --- payloaders ----------------------------------------------------------------------


def packetize_vp8(frame: bytes, picture_id: int) -> list[bytes]:
    """Relies on: ``Vp8Encoder._packetize(buffer, picture_id)`` (classmethod): RTP
    payloads with the VP8 payload descriptor, at most 1300 bytes each."""
    return Vp8Encoder._packetize(frame, picture_id)


def packetize_h264(frame: bytes) -> list[bytes]:
    """Relies on: ``H264Encoder._split_bitstream`` (Annex-B -> NAL units) and
    ``H264Encoder._packetize`` (STAP-A / FU-A, packetization-mode 1)."""
    return H264Encoder._packetize(H264Encoder._split_bitstream(frame))


# --- simulcast ingest (live/simulcast_ingest.py) -----------------------------------------


def accept_header_extensions(transceiver: RTCRtpTransceiver, extensions: list[tuple[str, int]]) -> None:
    """Negotiate header extensions aiortc does not know it needs (RtpStreamId and
    RepairedRtpStreamId for a simulcast publisher), with the offer's ids.

    Relies on: ``RTCRtpTransceiver._headerExtensions`` (list of
    ``RTCRtpHeaderExtensionParameters``), set by ``setRemoteDescription`` to the
    extensions aiortc and the offer share, read by ``createAnswer`` for the answer's
    ``a=extmap`` lines and by ``__remoteRtp`` for the receive parameters that configure
    ``RtpPacket.parse`` (``HeaderExtensionsMap.configure``: it maps these two URIs to
    ``packet.extensions.rtp_stream_id`` / ``repaired_rtp_stream_id``). Call it after
    ``setRemoteDescription`` and before ``createAnswer``."""
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

    present = {e.uri for e in transceiver._headerExtensions}
    for uri, extension_id in extensions:
        if uri not in present:
            transceiver._headerExtensions.append(RTCRtpHeaderExtensionParameters(id=extension_id, uri=uri))


def route_rtp_packets(
    receiver: RTCRtpReceiver, handler: Callable[[RtpPacket, int], Awaitable[None]]
) -> None:
    """Take over everything the receiver would do with RTP (a simulcast publisher's
    layers get a receive path each).

    Relies on: ``RTCDtlsTransport._handle_rtp_data`` calling
    ``await receiver._handle_rtp_packet(packet, arrival_time_ms=...)`` for every RTP
    packet its router gives this receiver (the router learns an unknown SSRC of the
    receiver's payload types into it), and aiortc's own statistics, NACKs, REMB and
    jitter buffer living only in that method, so none of them run once it is replaced."""

    async def routed(packet: RtpPacket, arrival_time_ms: int = 0) -> None:
        await handler(packet, arrival_time_ms)

    receiver._handle_rtp_packet = routed  # type: ignore[method-assign]


def receiver_codecs(receiver: RTCRtpReceiver) -> dict[int, RTCRtpCodecParameters]:
    """The receiver's payload type -> codec table (filled by ``receive()``, in place).

    Relies on: ``RTCRtpReceiver.__codecs``, the dict ``receive()`` fills."""
    private: Any = receiver
    codecs: dict[int, RTCRtpCodecParameters] = private._RTCRtpReceiver__codecs
    return codecs


def receiver_rtcp_ssrc(receiver: RTCRtpReceiver) -> Optional[int]:
    """The SSRC the receiver's RTCP goes out with (None before the connection is up).

    Relies on: ``RTCRtpReceiver.__rtcp_ssrc``, set by ``_set_rtcp_ssrc()`` when
    ``RTCPeerConnection`` connects (the transceiver's sender SSRC)."""
    private: Any = receiver
    ssrc: Optional[int] = private._RTCRtpReceiver__rtcp_ssrc
    return ssrc


def send_receiver_rtcp(receiver: RTCRtpReceiver) -> Callable[[AnyRtcpPacket], Awaitable[None]]:
    """Relies on: ``RTCRtpReceiver._send_rtcp(packet)`` (private coroutine: serialises and
    sends on the receiver's DTLS transport, ignoring ConnectionError)."""
    return receiver._send_rtcp


# --- test and benchmark publishers (tests/live/simulcast_publisher.py, bench/) --------------
# A hand-built simulcast publisher (aiortc cannot send simulcast) reaches these.


def keep_sender_idle(sender: RTCRtpSender) -> None:
    """Relies on ``RTCPeerConnection.__connect`` calling ``transceiver.sender.send(
    parameters)`` once DTLS is up, and ``RTCRtpSender.stop()`` doing nothing while its
    private ``__started`` is False: replaced, the sender never starts its RTP and RTCP
    tasks, so no SSRC but the layers' reaches the relay (Chromium sends none either)."""

    async def send(parameters: Any) -> None:
        return None

    sender.send = send  # type: ignore[method-assign]


def route_rtcp_to(transport: RTCDtlsTransport, ssrc: int, recipient: Any) -> None:
    """Relies on ``RTCDtlsTransport._rtp_router`` (an ``RtpRouter``): ``register_sender``
    maps an SSRC to an object whose ``_handle_rtcp_packet(packet)`` coroutine the
    router's ``route_rtcp`` then calls for RR/SR report blocks, NACK, PLI and FIR aimed
    at that SSRC, and REMB listing it."""
    transport._rtp_router.register_sender(recipient, ssrc)


async def send_rtp(transport: RTCDtlsTransport, data: bytes) -> None:
    """Relies on ``RTCDtlsTransport._send_rtp(data)``: SRTP- or SRTCP-protects (by the
    packet type) and sends; ConnectionError once the transport is closed."""
    await transport._send_rtp(data)
