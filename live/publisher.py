"""One published show's ingest: the publisher's peer connection and the frame taps.

aiortc keeps doing what it is good at toward the publisher (ICE, DTLS, SRTP, jitter
buffer, NACK, RTX, receiver reports); at the point where it would hand each
reassembled frame to its decoder thread, the tap hands it to the show's
``TrackFanout`` instead. Nothing is decoded.

A publisher can *resume* a show whose previous publisher was lost: it is handed the
show's ``TrackFanout``s and recorder and feeds them instead of making its own, so the
viewers and the recording carry on (see ``TrackFanout.resume``).

The "publisher" is either a WHIP client whose offer ``negotiate`` answers, or, on an
edge, the show's origin: ``pull`` makes the offer (recvonly audio and video), the
origin answers as it would any WHEP viewer, and from the first frame on the two are
indistinguishable. PLIs then go to the origin, whose own ``KeyframeRequester`` passes
them on to the real publisher.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Optional, Union

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpSrPacket

from live import aiortc_hooks
from live.errors import BadOffer, LiveError, OriginUnavailable
from live.ice_sockets import IceSockets
from live.keyframes import DEFAULT_MIN_INTERVAL, KeyframeRequester
from live.recorder import Recorder
from live.sdp import (
    Offer,
    SimulcastOffer,
    accepted_extensions,
    answer_offer,
    local_capability,
    parse_offer,
    refused_as,
    relayable_capabilities,
    rtx_capability,
    simulcast_answer,
)
from live.simulcast import SimulcastTrack
from live.simulcast_ingest import SimulcastIngest
from live.track_fanout import DEFAULT_REPLAY_WINDOW, TrackFanout

logger = logging.getLogger(__name__)

# aiortc's video jitter buffer holds 512 packets: one publisher packet that NACK cannot
# repair stalls every later frame until the buffer overflows, over 3 s at 1.5 Mbit/s.
# The capacity must be a power of two (aiortc's JitterBuffer). 256 packets lost 300 KB
# keyframes (libwebrtc's 1200-byte packets) whole even on a clean link, since a frame
# larger than the buffer can never be reassembled; 512 holds 600 KB, and bounds the
# freeze after an unrepairable loss to ~3.4 s at 150 packets/s.
VIDEO_JITTER_PACKETS = 512

# An edge's WHEP exchange with its origin: takes the SDP offer, returns the answer.
SendOffer = Callable[[str], Awaitable[str]]

# A simulcast publisher's first bandwidth estimate (kbit/s, x-google-start-bitrate): the
# studio's three layers (1.5 M + 500 k + 150 k) and audio. Without it Chromium starts
# near 300 kbit/s and its top layer took over 20 s to start (measured).
SIMULCAST_START_KBPS = 2300

VideoTrack = Union[TrackFanout, SimulcastTrack]


class Publisher:
    def __init__(
        self,
        show_id: int,
        *,
        ice_servers: list[RTCIceServer],
        ice_sockets: Optional[IceSockets] = None,
        recording_path: Optional[Path],
        on_connection_lost: Callable[[], None],
        spawn: Callable[[Coroutine[Any, Any, Any]], Any],
        keyframe_interval: float = DEFAULT_MIN_INTERVAL,
        replay_window: float = DEFAULT_REPLAY_WINDOW,
        resume: Optional[tuple[dict[str, VideoTrack], Optional[Recorder]]] = None,
    ) -> None:
        self.show_id = show_id
        # the tracks this connection feeds (on resume: those of the show's it sends)
        self.tracks: dict[str, VideoTrack] = {}
        self.recorder: Optional[Recorder] = resume[1] if resume else None
        # resuming: the show's tracks by kind, which this publisher must feed as they are
        self._inherited: Optional[dict[str, VideoTrack]] = dict(resume[0]) if resume else None
        self._simulcast: Optional[SimulcastOffer] = None
        self._ingest: Optional[SimulcastIngest] = None
        self.last_media = time.monotonic()
        self.codec_switches = 0
        self._recording_path = recording_path
        self._on_connection_lost = on_connection_lost
        self._spawn = spawn
        self._keyframe_interval = keyframe_interval
        self._replay_window = replay_window
        self._offer: Optional[Offer] = None
        self._closed = False
        # the keyframe-request routes this connection gave tracks, withdrawn at close
        self._sources: list[tuple[TrackFanout, Callable[[], None]]] = []
        self._ice_sockets = ice_sockets
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def negotiate(self, offer: Offer) -> str:
        """Apply the publisher's offer; return the SDP answer."""
        self._offer = offer
        video = offer.first("video")
        self._simulcast = video.simulcast if video is not None else None
        self._check_resume_layers()
        for media in offer.media:
            if media.kind in (t.kind for t in self.pc.getTransceivers()):
                continue  # one track per kind is relayed
            # Answer with one codec (plus RTX for video): the first the publisher prefers,
            # or, resuming, the show's: its viewers negotiated that one.
            codec = self._codec_for(media.kind, media.codecs)
            if codec is None:
                continue  # resuming: a kind the show does not have, no viewer expects it
            capability = local_capability(media.kind, codec)
            assert capability is not None  # parse_offer kept relayable codecs only
            preferences = [capability]
            rtx = rtx_capability(media.kind) if media.kind == "video" else None
            if rtx is not None:
                preferences.append(rtx)
            transceiver = self.pc.addTransceiver(media.kind, direction="recvonly")
            transceiver.setCodecPreferences(preferences)
        await answer_offer(self.pc, offer, self._before_answer)
        if not self.tracks:
            raise BadOffer("the offer has no audio or video the relay can receive")
        self._start_recording()
        answer = self.pc.localDescription.sdp
        if self._simulcast is not None and "video" in self.tracks:
            video = offer.first("video")
            answer = simulcast_answer(answer, video.mid if video else None, self._simulcast, SIMULCAST_START_KBPS)
        return answer

    def ingest_counters(self) -> dict[str, int]:
        """A simulcast publisher's dropped packets (unknown rid, unbound, RTX first)."""
        return self._ingest.counters() if self._ingest is not None else {}

    def _before_answer(self, pc: RTCPeerConnection) -> None:
        if self._ice_sockets is not None:
            self._ice_sockets.apply(pc)
        video = self._offer.first("video") if self._offer is not None else None
        if self._simulcast is not None and video is not None:
            extensions = accepted_extensions(video)
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    aiortc_hooks.accept_header_extensions(transceiver, extensions)

    def _check_resume_layers(self) -> None:
        """A resumed simulcast show keeps its viewers' layers: the same number of them.
        A single-layer show takes a simulcast publisher too (its largest layer)."""
        inherited = self._inherited.get("video") if self._inherited is not None else None
        if not isinstance(inherited, SimulcastTrack):
            return
        layers = len(inherited.layers)
        offered = len(self._simulcast.rids) if self._simulcast is not None else 1
        if layers != offered:
            raise BadOffer(f"resume the show with {layers} video layer(s), as it was published")

    def _codec_for(
        self, kind: str, offered: tuple[RTCRtpCodecParameters, ...]
    ) -> Optional[RTCRtpCodecParameters]:
        if self._inherited is None:
            return offered[0]
        track = self._inherited.get(kind)
        if track is None:
            return None
        codec = next((c for c in offered if c.name.lower() == track.codec_name), None)
        if codec is None:
            raise BadOffer(
                f"resume the show with {track.capability.mimeType}: its viewers receive that"
            )
        return codec

    async def pull(self, send_offer: SendOffer) -> str:
        """Edge: receive the show from its origin over WHEP; return the origin's answer.

        Raises what ``send_offer`` raises (e.g. ShowNotLive from the origin) and
        OriginUnavailable for an answer the edge cannot use."""
        for kind in ("video", "audio"):
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            # No RTX: the origin sends none to viewers and repairs loss on the media SSRC.
            transceiver.setCodecPreferences(relayable_capabilities(kind))
        if self._ice_sockets is not None:
            self._ice_sockets.apply(self.pc)  # before the gathering setLocalDescription does
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await send_offer(self.pc.localDescription.sdp)
        try:
            # The origin's answer sends what the edge receives, as a WHIP offer would:
            # parsed the same way, it gives each track's SSRC (PLI target, SR filter).
            self._offer = parse_offer(answer, role="publisher")
        except LiveError as exc:
            raise OriginUnavailable(f"the origin's answer is unusable: {exc}") from exc
        with refused_as(OriginUnavailable, "the origin's answer"):
            await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        if not self.tracks:
            raise OriginUnavailable("the origin sends no audio or video the edge can relay")
        self._start_recording()
        return answer

    def _start_recording(self) -> None:
        if self._recording_path is not None and self.recorder is None:
            video = self.tracks.get("video")
            audio = self.tracks.get("audio")
            self.recorder = Recorder(
                self._recording_path,
                video_codec=video.codec_name if video else None,
                audio_codec=audio.codec_name if audio else None,
            )
            for track in self.tracks.values():
                track.recorder = self.recorder

    async def close(self) -> None:
        """Close the connection. The tracks and the recording outlive it (a resumed
        publisher carries them on): whoever owns the show closes those."""
        if not self._closed:
            self._closed = True  # no frame from this connection reaches a track now
            for track, source in self._sources:
                if track.source is source:
                    track.source = None
            if self._ingest is not None:
                self._ingest.close()
        await self.pc.close()

    # --- aiortc events --------------------------------------------------------------

    def _on_connection_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed") and not self._closed:
            self._on_connection_lost()

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        receiver = transceiver.receiver
        kind = track.kind
        codecs = aiortc_hooks.negotiated_codecs(transceiver)
        inherited = self._inherited.get(kind) if self._inherited is not None else None
        if kind in self.tracks or not codecs or (self._inherited is not None and inherited is None):
            aiortc_hooks.tap_encoded_frames(receiver, lambda item: None)  # never decode
            return
        codec = codecs[0]
        capability = local_capability(kind, codec)
        if capability is None or codec.payloadType is None:
            aiortc_hooks.tap_encoded_frames(receiver, lambda item: None)
            return
        media = self._offer.first(kind) if self._offer else None
        media_ssrc = media.ssrc if media else None
        if kind == "video" and self._simulcast is not None:
            assert codec.payloadType is not None
            self._receive_layers(transceiver, capability, codec.payloadType, inherited)
            return

        source: Optional[Callable[[], None]] = None
        if kind == "video":
            send_pli = aiortc_hooks.intercept_picture_loss(
                receiver, lambda ssrc: self._publisher_lost_packets(kind)
            )
            source = lambda: self._spawn(self._request_keyframe(transceiver, send_pli, media_ssrc))  # noqa: E731
            aiortc_hooks.replace_jitter_buffer(
                receiver,
                aiortc_hooks.MarkerJitterBuffer(capacity=VIDEO_JITTER_PACKETS, is_video=True),
            )
        else:
            aiortc_hooks.replace_jitter_buffer(receiver, aiortc_hooks.AudioPassThrough())

        if inherited is not None:
            fanout = inherited
            fanout.resume()
        else:
            fanout = TrackFanout(
                kind=kind,
                capability=capability,
                payload_type=codec.payloadType,
                ssrc=random.getrandbits(32),
                replay_window=self._replay_window,
            )
            if kind == "video":
                fanout.keyframes = KeyframeRequester(
                    fanout.ask_source, min_interval=self._keyframe_interval
                )
        if source is not None:
            self._sources.append((fanout, source))
            fanout.source = source
            if inherited is not None and fanout.keyframes is not None:
                fanout.keyframes.request()  # a picture for the viewers who were waiting
        self.tracks[kind] = fanout
        aiortc_hooks.keep_publisher_timestamps(receiver)
        aiortc_hooks.observe_sender_reports(
            receiver, lambda packet: self._on_sender_report(fanout, media_ssrc, packet)
        )
        aiortc_hooks.tap_encoded_frames(receiver, self._frame_sink(fanout))

    def _receive_layers(
        self,
        transceiver: RTCRtpTransceiver,
        capability: Any,
        payload_type: int,
        inherited: Optional[VideoTrack],
    ) -> None:
        """Simulcast video: a receive path per layer (SimulcastIngest) feeding a
        SimulcastTrack (new, or the show's on resume)."""
        assert self._simulcast is not None
        receiver = transceiver.receiver
        rids = self._simulcast.rids
        if isinstance(inherited, TrackFanout):
            self._feed_one_layer(receiver, inherited, rids)
            return
        if isinstance(inherited, SimulcastTrack):
            track = inherited
            track.resume()
        else:
            track = SimulcastTrack(
                capability=capability,
                payload_type=payload_type,
                ssrc=random.getrandbits(32),
                rids=rids,
                keyframe_interval=self._keyframe_interval,
                replay_window=self._replay_window,
            )
        send_pli = receiver._send_rtcp_pli
        ingest = SimulcastIngest(
            rids,
            aiortc_hooks.receiver_codecs(receiver),
            on_frame=self._layer_sink(track),
            on_picture_loss=lambda index: track.layers[index].publisher_lost_packets(),
            send_rtcp=aiortc_hooks.send_receiver_rtcp(receiver),
            rtcp_ssrc=lambda: aiortc_hooks.receiver_rtcp_ssrc(receiver),
            spawn=self._spawn,
        )
        self._ingest = ingest
        aiortc_hooks.route_rtp_packets(receiver, ingest.handle_rtp)
        aiortc_hooks.tap_encoded_frames(receiver, lambda item: None)  # never decode
        aiortc_hooks.observe_sender_reports(
            receiver, lambda packet: self._on_layer_report(track, ingest, packet)
        )
        for index, layer in enumerate(track.layers):
            source = self._layer_keyframe_source(ingest, index, send_pli)
            self._sources.append((layer, source))
            layer.source = source
            if inherited is not None and layer.keyframes is not None:
                layer.keyframes.request()
        ingest.start()
        self.tracks["video"] = track

    def _feed_one_layer(self, receiver: Any, fanout: TrackFanout, rids: list[str]) -> None:
        """A simulcast publisher taking over a pulled show: an edge pulls one layer, so
        its viewers hang on a single-layer track. Its largest layer feeds that track
        (the last rid: browsers list layers from low to high), the others are dropped,
        and the viewers keep their connections at the quality they had."""
        index = len(rids) - 1
        fanout.resume()
        send_pli = receiver._send_rtcp_pli

        def on_frame(layer: int, frame: bytes, timestamp: int, now: float) -> None:
            if layer == index and not self._closed:
                self.last_media = now
                fanout.on_frame(frame, timestamp, now)

        ingest = SimulcastIngest(
            rids,
            aiortc_hooks.receiver_codecs(receiver),
            on_frame=on_frame,
            on_picture_loss=lambda layer: fanout.publisher_lost_packets() if layer == index else None,
            send_rtcp=aiortc_hooks.send_receiver_rtcp(receiver),
            rtcp_ssrc=lambda: aiortc_hooks.receiver_rtcp_ssrc(receiver),
            spawn=self._spawn,
        )
        self._ingest = ingest

        def on_report(packet: RtcpSrPacket) -> None:
            if ingest.sender_report(packet) == index:
                info = packet.sender_info
                fanout.publisher_report(info.ntp_timestamp, info.rtp_timestamp, time.monotonic())

        aiortc_hooks.route_rtp_packets(receiver, ingest.handle_rtp)
        aiortc_hooks.tap_encoded_frames(receiver, lambda item: None)  # never decode
        aiortc_hooks.observe_sender_reports(receiver, on_report)
        source = self._layer_keyframe_source(ingest, index, send_pli)
        self._sources.append((fanout, source))
        fanout.source = source
        if fanout.keyframes is not None:
            fanout.keyframes.request()  # a picture for the viewers who were waiting
        ingest.start()
        self.tracks["video"] = fanout

    def _layer_keyframe_source(
        self, ingest: SimulcastIngest, index: int, send_pli: Callable[[int], Awaitable[None]]
    ) -> Callable[[], None]:
        return lambda: self._spawn(ingest.request_keyframe(index, send_pli))

    def _layer_sink(self, track: SimulcastTrack) -> Callable[[int, bytes, int, float], None]:
        def sink(index: int, frame: bytes, timestamp: int, now: float) -> None:
            if self._closed:
                return
            self.last_media = now
            track.on_layer_frame(index, frame, timestamp, now)

        return sink

    def _on_layer_report(self, track: SimulcastTrack, ingest: SimulcastIngest, packet: RtcpSrPacket) -> None:
        index = ingest.sender_report(packet)
        if index is not None:
            info = packet.sender_info
            track.layer_report(index, info.ntp_timestamp, info.rtp_timestamp, time.monotonic())

    def _frame_sink(
        self, fanout: TrackFanout
    ) -> Callable[[Optional[tuple[RTCRtpCodecParameters, JitterFrame]]], None]:
        codec_name = fanout.codec_name
        on_frame = fanout.on_frame
        monotonic = time.monotonic

        def sink(item: Optional[tuple[RTCRtpCodecParameters, JitterFrame]]) -> None:
            # Runs inside aiortc's RTP handling: an exception here would kill the
            # publisher's transport, so none may escape.
            if item is None or self._closed:
                return  # the track ended or was handed on; the hub notices the loss
            codec, frame = item
            now = monotonic()
            self.last_media = now
            if codec.name.lower() != codec_name:
                self.codec_switches += 1
                return
            try:
                on_frame(frame.data, frame.timestamp, now)
            except Exception:
                logger.exception("show %s: relaying a %s frame failed", self.show_id, fanout.kind)

        return sink

    def _on_sender_report(
        self, fanout: TrackFanout, media_ssrc: Optional[int], packet: RtcpSrPacket
    ) -> None:
        if media_ssrc is None or packet.ssrc == media_ssrc:
            info = packet.sender_info
            fanout.publisher_report(info.ntp_timestamp, info.rtp_timestamp, time.monotonic())

    def _publisher_lost_packets(self, kind: str) -> None:
        track = self.tracks.get(kind)
        if track is not None:
            track.publisher_lost_packets()

    async def _request_keyframe(
        self,
        transceiver: RTCRtpTransceiver,
        send_pli: Callable[[int], Any],
        media_ssrc: Optional[int],
    ) -> None:
        if media_ssrc is not None:
            ssrcs = [media_ssrc]
        else:  # no a=ssrc in the offer: ask every source seen (an RTX one ignores it)
            ssrcs = [s.source for s in transceiver.receiver.getSynchronizationSources()]
        for ssrc in ssrcs:
            await send_pli(ssrc)
