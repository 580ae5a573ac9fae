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
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.turn import UDP_SOCKET_BUFFER_SIZE
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import AnyRtcpPacket, RtcpSrPacket

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
    audio has no NACK, so prefetching only adds latency."""
    receiver._RTCRtpReceiver__jitter_buffer = buffer  # type: ignore[attr-defined]


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, but a frame leaves at its marker bit.

    aiortc releases a frame when the first packet of the *next* frame arrives, one
    frame interval (33 ms at 30 fps) late. VP8 (RFC 7741) and H.264 (RFC 6184) senders
    set the marker on the last packet of a frame, so once every packet from the frame's
    first to its marked last one is present, the frame is complete. aiortc's rule stays
    as the fallback for senders that do not mark frames. Relies on: ``JitterBuffer``'s
    ``_origin``, ``_packets``, ``_capacity``, ``remove()`` and ``_remove_frame()``
    (called by ``add()``), and the depayloaded ``RtpPacket._data`` the receiver sets.
    """

    def _remove_frame(self, sequence_number: int) -> Optional[JitterFrame]:
        packets = []
        timestamp = None
        capacity = self._capacity
        origin = self._origin
        assert origin is not None
        for count in range(capacity):
            packet = self._packets[(origin + count) % capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                self.remove(count)
                return JitterFrame(b"".join(p._data for p in packets), timestamp)  # type: ignore[attr-defined]
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(b"".join(p._data for p in packets), timestamp)  # type: ignore[attr-defined]
        return None


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
