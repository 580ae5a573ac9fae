"""One viewer: its peer connection and one ``DownTrack`` per track it receives.

aiortc negotiates (ICE, DTLS, the SDP answer); the relay then takes over each sender:
the sender announces the show track's SSRC, is never started, and the viewer's RTCP
for it (receiver reports, NACK, PLI) comes to the ``DownTrack``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Optional, Union

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import AnyRtcpPacket

from live import aiortc_hooks
from live.downtrack import DownTrack
from live.simulcast import LayeredDownTrack, SimulcastTrack
from live.ice_sockets import IceSockets
from live.sdp import Offer, answer_offer
from live.track_fanout import TrackFanout

logger = logging.getLogger(__name__)


class Viewer:
    def __init__(
        self,
        session_id: str,
        show_id: int,
        *,
        ice_servers: list[RTCIceServer],
        ice_sockets: IceSockets | None = None,
        on_gone: Callable[["Viewer", str], None],
        max_quality: Optional[int] = None,
        client: Optional[str] = None,
    ) -> None:
        self.session_id = session_id
        self.client = client  # who asked, for the hub's per-client cap
        # Simulcast: the highest layer this viewer may get (0 the smallest; None any).
        self.max_quality = max_quality
        self.show_id = show_id
        self.downtracks: dict[str, DownTrack] = {}
        self.created_at = time.monotonic()
        self.last_heard = self.created_at  # last RTCP from the viewer
        self.connected_at: Optional[float] = None  # ICE and DTLS done
        self.closed = False
        self._tracks: dict[str, Union[TrackFanout, SimulcastTrack]] = {}
        # per DTLS transport (one when bundled): the transport, its ICE pair, the path
        self._paths: dict[int, tuple[Any, Any, aiortc_hooks.DatagramPath]] = {}
        self._transport_of: dict[str, int] = {}
        self._on_gone = on_gone
        self._ice_sockets = ice_sockets
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def negotiate(self, offer: Offer, tracks: dict[str, Union[TrackFanout, SimulcastTrack]]) -> str:
        """Answer the viewer's offer with the given show tracks; return the SDP answer."""
        self._tracks = tracks
        for kind, track in tracks.items():
            transceiver = self.pc.addTransceiver(kind, direction="sendonly")
            # The publisher's codec only, no RTX: retransmissions go out on the media
            # SSRC, which every receiver accepts.
            transceiver.setCodecPreferences([track.capability])
            sender = transceiver.sender
            aiortc_hooks.force_sender_ssrc(sender, track.ssrc)
            aiortc_hooks.take_over_sender(
                sender, on_send=self._starter(kind, sender), on_rtcp=self._rtcp_handler(kind)
            )
        return await answer_offer(self.pc, offer, self._ice_sockets.apply if self._ice_sockets else None)

    def _starter(self, kind: str, sender: Any) -> Callable[[RTCRtpSendParameters], None]:
        return lambda parameters: self._start(kind, sender, parameters)

    def _rtcp_handler(self, kind: str) -> Callable[[AnyRtcpPacket], Awaitable[None]]:
        return lambda packet: self._on_rtcp(kind, packet)

    def _start(self, kind: str, sender: Any, parameters: RTCRtpSendParameters) -> None:
        """DTLS is up (called from aiortc's connect task): start sending this track."""
        if self.closed or kind in self.downtracks:
            return
        track = self._tracks[kind]
        try:
            transport = sender.transport
            known = self._paths.get(id(transport))
            if known is None:
                key = aiortc_hooks.selected_pair_key(transport)
                known = (transport, key, aiortc_hooks.selected_datagram_path(transport))
                self._paths[id(transport)] = known
            path = known[2]
            payload_type = parameters.codecs[0].payloadType
            assert payload_type is not None
            layered = isinstance(track, SimulcastTrack)
            downtrack = (LayeredDownTrack if layered else DownTrack)(
                track,  # type: ignore[arg-type]
                payload_type=payload_type,
                cname=parameters.rtcp.cname or "livemall",
                srtp=aiortc_hooks.srtp_protector(transport),
                path=path,
                on_heard=self._heard,
                on_failure=self._send_failed,
            )
        except Exception as exc:
            logger.warning("viewer %s: cannot start %s: %s", self.session_id, kind, exc)
            self._gone("no send path")
            return
        self.downtracks[kind] = downtrack
        self._transport_of[kind] = id(transport)
        if isinstance(track, SimulcastTrack):
            track.attach(downtrack, cap=self.max_quality)
        else:
            track.attach(downtrack)

    def set_max_quality(self, quality: Optional[int]) -> None:
        """The viewer's quality choice, for a simulcast show (ignored otherwise)."""
        self.max_quality = quality
        for kind, downtrack in self.downtracks.items():
            track = self._tracks.get(kind)
            if isinstance(track, SimulcastTrack):
                track.set_cap(downtrack, quality)

    def follow_ice(self) -> None:
        """Send to the pair ICE uses now, if the viewer nominated another one."""
        for transport_id, (transport, key, path) in list(self._paths.items()):
            current = aiortc_hooks.selected_pair_key(transport)
            if current is None or current == key:
                continue
            try:
                fresh = aiortc_hooks.selected_datagram_path(transport)
            except ConnectionError:
                continue
            self._paths[transport_id] = (transport, current, fresh)
            for kind, downtrack in self.downtracks.items():
                if self._transport_of.get(kind) == transport_id:
                    downtrack.use_path(fresh)
            path.close()

    def _heard(self) -> None:
        self.last_heard = time.monotonic()

    async def _on_rtcp(self, kind: str, packet: AnyRtcpPacket) -> None:
        downtrack = self.downtracks.get(kind)
        if downtrack is not None:
            await downtrack.handle_rtcp(packet)
        else:
            self._heard()

    def _send_failed(self, exc: BaseException) -> None:
        self._gone(f"send failed: {exc}")

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
        if state in ("failed", "closed"):
            self._gone(f"connection {state}")

    def _gone(self, reason: str) -> None:
        if not self.closed:
            self._on_gone(self, reason)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for kind, downtrack in self.downtracks.items():
            self._tracks[kind].detach(downtrack)  # a simulcast track: whichever layer
        await self.pc.close()
        for _, _, path in self._paths.values():
            path.close()
        self._paths.clear()
