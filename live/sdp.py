"""Offer validation: turn untrusted SDP text into a checked ``Offer`` or ``BadOffer``.

Run before any peer connection exists, so garbage never reaches aiortc's parser state
and the error says what was wrong rather than which aiortc assertion failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, Optional

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, sdp
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

from live.errors import BadOffer, LiveError

Role = Literal["publisher", "viewer"]

MAX_OFFER_BYTES = 64 * 1024
# A browser offers two or three m-lines (audio, video, maybe data); hundreds would each
# cost aiortc a transceiver and a parse. Checked on the raw text, before the parser.
MAX_MEDIA_SECTIONS = 16
RELAYED_CODECS = {"video": ("vp8", "h264"), "audio": ("opus",)}
_SENDING = {"publisher": ("sendonly", "sendrecv"), "viewer": ("recvonly", "sendrecv")}


@dataclass(frozen=True)
class OfferedMedia:
    """One usable audio or video m-line of an offer."""

    kind: str
    codecs: tuple[RTCRtpCodecParameters, ...]  # relayable codecs, in the offer's order
    ssrc: Optional[int]  # the primary SSRC the peer announced, if any


@dataclass(frozen=True)
class Offer:
    text: str
    media: tuple[OfferedMedia, ...]

    def first(self, kind: str) -> Optional[OfferedMedia]:
        return next((m for m in self.media if m.kind == kind), None)


def parse_offer(text: object, *, role: Role) -> Offer:
    """Validate an SDP offer from a publisher (WHIP) or a viewer (WHEP)."""
    if not isinstance(text, str) or not text.strip():
        raise BadOffer("the offer is empty")
    if len(text) > MAX_OFFER_BYTES:
        raise BadOffer(f"the offer is larger than {MAX_OFFER_BYTES} bytes")
    if not text.lstrip().startswith("v=0"):
        raise BadOffer("the offer is not SDP (it must start with v=0)")
    sections = text.count("\nm=")
    if sections > MAX_MEDIA_SECTIONS:
        raise BadOffer(f"the offer has {sections} m-lines; at most {MAX_MEDIA_SECTIONS} are accepted")
    try:
        description = sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser raises assert/Value/Key/StopIteration
        raise BadOffer(f"the offer is not valid SDP ({type(exc).__name__})") from exc

    usable: list[OfferedMedia] = []
    for media in description.media:
        if media.kind not in RELAYED_CODECS or media.port == 0:
            continue
        if (media.direction or "sendrecv") not in _SENDING[role]:
            continue
        if not media.ice or not media.ice.usernameFragment or not media.ice.password:
            raise BadOffer(f"the {media.kind} m-line has no ICE credentials")
        if not media.dtls or not media.dtls.fingerprints:
            raise BadOffer(f"the {media.kind} m-line has no DTLS fingerprint")
        if not media.rtcp_mux:
            raise BadOffer(f"the {media.kind} m-line does not use rtcp-mux")
        codecs = tuple(c for c in media.rtp.codecs if local_capability(media.kind, c))
        if not codecs:
            continue
        usable.append(OfferedMedia(kind=media.kind, codecs=codecs, ssrc=_primary_ssrc(media)))

    if not usable:
        wanted = "send" if role == "publisher" else "receive"
        raise BadOffer(f"the offer has no audio or video to {wanted} with VP8, H.264 or Opus")
    return Offer(text=text, media=tuple(usable))


def local_capability(kind: str, codec: RTCRtpCodecParameters) -> Optional[RTCRtpCodecCapability]:
    """aiortc's own capability matching ``codec`` (codec preferences must be one of
    these), or None if the relay cannot carry it."""
    if codec.name.lower() not in RELAYED_CODECS.get(kind, ()):
        return None
    for capability in RTCRtpSender.getCapabilities(kind).codecs:
        if is_codec_compatible(capability, codec):  # type: ignore[arg-type]
            return capability
    return None


def relayable_capabilities(kind: str) -> list[RTCRtpCodecCapability]:
    """Every codec of ``kind`` the relay can carry, in aiortc's order: what an edge
    offers its origin, which answers with the one its publisher sends."""
    return [
        c
        for c in RTCRtpSender.getCapabilities(kind).codecs
        if c.name.lower() in RELAYED_CODECS.get(kind, ())
    ]


def rtx_capability(kind: str) -> Optional[RTCRtpCodecCapability]:
    return next(
        (c for c in RTCRtpSender.getCapabilities(kind).codecs if c.name.lower() == "rtx"),
        None,
    )


def accepts(media: OfferedMedia, capability: RTCRtpCodecCapability) -> bool:
    """Whether a viewer's m-line can receive the show's codec."""
    return any(is_codec_compatible(capability, c) for c in media.codecs)  # type: ignore[arg-type]


def _primary_ssrc(media: sdp.MediaDescription) -> Optional[int]:
    for group in media.ssrc_group:
        if group.semantic == "FID" and group.items:
            return int(group.items[0])
    return media.ssrc[0].ssrc if media.ssrc else None


@contextlib.contextmanager
def refused_as(error: type[LiveError], what: str) -> Iterator[None]:
    """aiortc refuses a description it cannot use with ValueError, LookupError,
    AssertionError or an error of its own (OperationError, InvalidStateError): turn any
    of them into `error`, so a bad SDP is the caller's 4xx/5xx, never a crash."""
    try:
        yield
    except (ValueError, LookupError, AssertionError) as exc:
        raise error(f"{what} was refused: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("aiortc"):
            raise error(f"{what} was refused: {exc}") from exc
        raise


async def answer_offer(pc: RTCPeerConnection, offer: Offer, apply_ice: Optional[Callable[[RTCPeerConnection], None]]) -> str:
    """Set the remote offer, let `apply_ice` shape the host candidates before gathering
    (setLocalDescription gathers), and return the SDP answer; BadOffer if refused."""
    with refused_as(BadOffer, "the offer"):
        await pc.setRemoteDescription(RTCSessionDescription(offer.text, "offer"))
        if apply_ice is not None:
            apply_ice(pc)
        await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp
