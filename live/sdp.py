"""Offer validation: turn untrusted SDP text into a checked ``Offer`` or ``BadOffer``.

Run before any peer connection exists, so garbage never reaches aiortc's parser state
and the error says what was wrong rather than which aiortc assertion failed.

A publisher's video m-line may offer simulcast (RFC 8853): two or three encodings of
the same picture, told apart by an RTP stream id ("rid", RFC 8851/8852) header
extension, as Chromium sends with ``sendEncodings``. aiortc neither parses ``a=rid`` /
``a=simulcast`` nor answers them, so ``parse_offer`` reads them from the m-section text
into ``SimulcastOffer`` and ``simulcast_answer`` writes the receiving side into the
answer text the client gets.
"""

from __future__ import annotations

import contextlib
import re
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

RTP_STREAM_ID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RTP_STREAM_ID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
# Chromium never offers more than three (a fourth sendEncoding is left out of its
# offer); a longer list is answered with its first three, which RFC 8853 allows.
MAX_SIMULCAST_LAYERS = 3
# RFC 8851's rid-syntax, limited to the 16 bytes a one-byte header extension carries.
_RID = re.compile(r"[A-Za-z0-9_-]{1,16}")


@dataclass(frozen=True)
class SimulcastOffer:
    """A publisher's video m-line that sends 2–3 layers, each with its own rid (and
    its own SSRCs, which rid-based simulcast never announces)."""

    rids: tuple[str, ...]  # the layers to receive, in the a=simulcast order
    rid_extension: int  # the offer's extmap id for RTP_STREAM_ID
    repaired_rid_extension: Optional[int]  # ... for REPAIRED_RTP_STREAM_ID (on RTX)


@dataclass(frozen=True)
class OfferedMedia:
    """One usable audio or video m-line of an offer."""

    kind: str
    codecs: tuple[RTCRtpCodecParameters, ...]  # relayable codecs, in the offer's order
    ssrc: Optional[int]  # the primary SSRC the peer announced, if any
    mid: Optional[str] = None
    # a publisher's video sent as layers; None for one layer (and for viewers, audio)
    simulcast: Optional[SimulcastOffer] = None


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
    # aiortc's parser skips a=rid and a=simulcast: read them from each m-section's lines,
    # grouped by aiortc's own grouplines so that they line up with description.media.
    # Only publishers send layers; the substring test keeps other offers at one pass.
    sections = (
        sdp.grouplines(text)[1]
        if role == "publisher" and "a=simulcast:" in text
        else None
    )

    usable: list[OfferedMedia] = []
    for index, media in enumerate(description.media):
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
        simulcast = None
        if sections is not None and media.kind == "video":
            simulcast = _simulcast_offer(media, sections[index])
        usable.append(
            OfferedMedia(
                kind=media.kind,
                codecs=codecs,
                ssrc=_primary_ssrc(media),
                mid=media.rtp.muxId,
                simulcast=simulcast,
            )
        )

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


def _simulcast_offer(media: sdp.MediaDescription, lines: list[str]) -> Optional[SimulcastOffer]:
    """The layers a publisher's video m-section sends, or None for a single layer.

    Rules for what a browser would not send (issue 13): a malformed rid, a rid named
    twice or a malformed a=simulcast is a BadOffer; more than MAX_SIMULCAST_LAYERS are
    cut to the first ones; fewer than two usable layers, or a=rid without a=simulcast,
    is a single-layer offer (the extra lines are ignored); layers without the
    rtp-stream-id extension could not be told apart, so that is a BadOffer."""
    values = [line[len("a=simulcast:"):] for line in lines if line.startswith("a=simulcast:")]
    if not values:
        return None
    if len(values) > 1:
        raise BadOffer("the video m-line has more than one a=simulcast line")
    directions = _rid_directions(lines)
    rids: list[str] = []
    for alternatives in _simulcast_send_streams(values[0]):
        # RFC 8853: one stream, sent in one of its alternative formats; answering with
        # one alternative (the first that is not paused and has its a=rid) is allowed.
        rid = next(
            (r for r, paused in alternatives if not paused and directions.get(r) == "send"),
            None,
        )
        if rid is not None:
            rids.append(rid)
    if len(rids) < 2:
        return None
    ids: dict[str, int] = {}
    uris: dict[int, str] = {}
    for extension in media.rtp.headerExtensions:
        if not 1 <= extension.id <= 255:  # RFC 8285: 1-14 one-byte, up to 255 two-byte
            raise BadOffer(f"the video m-line has an invalid extmap id {extension.id}")
        if uris.setdefault(extension.id, extension.uri) != extension.uri:
            raise BadOffer(f"the video m-line gives extmap id {extension.id} to two extensions")
        ids.setdefault(extension.uri, extension.id)
    rid_extension = ids.get(RTP_STREAM_ID)
    if rid_extension is None:
        raise BadOffer(f"simulcast needs the {RTP_STREAM_ID} extension")
    return SimulcastOffer(
        rids=tuple(rids[:MAX_SIMULCAST_LAYERS]),
        rid_extension=rid_extension,
        repaired_rid_extension=ids.get(REPAIRED_RTP_STREAM_ID),
    )


def _rid_directions(lines: list[str]) -> dict[str, str]:
    """``a=rid:<id> <send|recv> [restrictions]`` lines as {rid: direction}. The
    restrictions (pt=, max-width=, ...) are ignored: the relay forwards what comes."""
    directions: dict[str, str] = {}
    for line in lines:
        if not line.startswith("a=rid:"):
            continue
        fields = line[len("a=rid:"):].split()
        if len(fields) < 2 or fields[1] not in ("send", "recv"):
            raise BadOffer(f"the a=rid line {line[:60]!r} is malformed")
        rid = _checked_rid(fields[0])
        if rid in directions:
            raise BadOffer(f"the rid {rid!r} has more than one a=rid line")
        directions[rid] = fields[1]
    return directions


def _simulcast_send_streams(value: str) -> list[list[tuple[str, bool]]]:
    """The send part of an a=simulcast value (RFC 8853: ``send q;h,h2;~f recv r``), as
    streams of alternatives, each a (rid, paused) pair."""
    fields = value.split()
    if len(fields) not in (2, 4) or any(d not in ("send", "recv") for d in fields[::2]):
        raise BadOffer(f"the a=simulcast line {value[:60]!r} is malformed")
    if len(fields) == 4 and fields[0] == fields[2]:
        raise BadOffer(f"the a=simulcast line {value[:60]!r} is malformed")
    listed = dict(zip(fields[::2], fields[1::2])).get("send")
    if listed is None:
        return []
    streams: list[list[tuple[str, bool]]] = []
    seen: set[str] = set()
    for stream in listed.split(";"):
        alternatives = []
        for entry in stream.split(","):
            paused = entry.startswith("~")
            rid = _checked_rid(entry[1:] if paused else entry)
            if rid in seen:
                raise BadOffer(f"the rid {rid!r} is listed twice in a=simulcast")
            seen.add(rid)
            alternatives.append((rid, paused))
        streams.append(alternatives)
    return streams


def _checked_rid(rid: str) -> str:
    if not _RID.fullmatch(rid):
        raise BadOffer(f"{rid[:40]!r} is not a valid rid (1-16 of A-Z a-z 0-9 _ -)")
    return rid


def accepted_extensions(media: OfferedMedia) -> list[tuple[str, int]]:
    """The (uri, id) header extensions a simulcast m-line needs beyond aiortc's own
    (rid, and repaired rid if offered), to be added to the transceiver before
    ``createAnswer`` so that the answer carries them and aiortc parses them; [] for a
    single-layer m-line."""
    simulcast = media.simulcast
    if simulcast is None:
        return []
    extensions = [(RTP_STREAM_ID, simulcast.rid_extension)]
    if simulcast.repaired_rid_extension is not None:
        extensions.append((REPAIRED_RTP_STREAM_ID, simulcast.repaired_rid_extension))
    return extensions


def simulcast_answer(
    answer_sdp: str, mid: Optional[str], simulcast: Optional[SimulcastOffer], start_kbps: int
) -> str:
    """The relay's answer with the video m-section (``a=mid:<mid>``, or the first
    m=video if ``mid`` is None) receiving ``simulcast``'s layers: ``a=rid:<r> recv`` per
    layer and ``a=simulcast:recv r1;r2;...`` after its a=mid line, and
    ``x-google-start-bitrate=<start_kbps>`` on its codec's fmtp, without which Chromium
    starts low and takes many seconds to send its top layer. Unchanged (the same
    string) for a single-layer offer (``simulcast`` None) or a rejected m-line (port 0).

    Raises ValueError if the answer has no such video m-section: the caller's mistake.
    """
    if simulcast is None:
        return answer_sdp
    if start_kbps <= 0:
        raise ValueError(f"start_kbps must be positive, not {start_kbps}")
    eol = "\r\n" if "\r\n" in answer_sdp else "\n"
    lines = answer_sdp.split(eol)
    start, end = _video_section(lines, mid)
    section = lines[start:end]
    m_line = section[0].split()
    if len(m_line) < 4 or m_line[1] == "0":
        return answer_sdp

    receive = [f"a=rid:{rid} recv" for rid in simulcast.rids]
    receive.append("a=simulcast:recv " + ";".join(simulcast.rids))
    after = next(
        (i + 1 for i, line in enumerate(section) if line.startswith("a=mid:")), len(section)
    )
    section[after:after] = receive

    payload_type = _media_codec(section, m_line[3:])
    if payload_type is not None:
        start_bitrate = f"x-google-start-bitrate={start_kbps}"
        fmtp = _line_index(section, f"a=fmtp:{payload_type} ")
        if fmtp is not None:
            section[fmtp] += ";" + start_bitrate  # H.264: after its profile parameters
        else:  # aiortc writes no fmtp for VP8: one goes where it would, after rtcp-fb
            at = (_line_index(section, f"a=rtpmap:{payload_type} ") or 0) + 1
            while at < len(section) and section[at].startswith(f"a=rtcp-fb:{payload_type} "):
                at += 1
            section.insert(at, f"a=fmtp:{payload_type} {start_bitrate}")
    return eol.join(lines[:start] + section + lines[end:])


def _video_section(lines: list[str], mid: Optional[str]) -> tuple[int, int]:
    """[start, end) of the video m-section with ``mid`` (or the first), in ``lines``."""
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    for start, end in zip(starts, starts[1:] + [len(lines)]):
        while end > start + 1 and not lines[end - 1]:
            end -= 1  # the empty string after the answer's final line ending
        if not lines[start].startswith("m=video "):
            continue
        if mid is None or f"a=mid:{mid}" in lines[start + 1:end]:
            return start, end
    raise ValueError(f"the answer has no video m-line with mid {mid!r}")


def _media_codec(section: list[str], payload_types: list[str]) -> Optional[str]:
    """The payload type of the section's first media codec (not RTX, RED or FEC)."""
    names = {}
    for line in section:
        if line.startswith("a=rtpmap:"):
            pt, _, encoding = line[len("a=rtpmap:"):].partition(" ")
            names[pt] = encoding.split("/")[0].lower()
    not_media = (None, "rtx", "red", "ulpfec", "flexfec-03")
    return next((pt for pt in payload_types if names.get(pt) not in not_media), None)


def _line_index(lines: list[str], prefix: str) -> Optional[int]:
    return next((i for i, line in enumerate(lines) if line.startswith(prefix)), None)


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


def answered_rids(answer_sdp: str, mid: Optional[str]) -> Optional[list[str]]:
    """The rids an answer's video m-section (``a=mid:<mid>``) receives and does not
    pause, in its order (the first alternative of each stream); None if it receives no
    simulcast (no ``a=simulcast`` with recv streams, or no rid extension). What a
    publisher (the tests' and the benchmark's) reads to know which layers to send."""
    description = sdp.SessionDescription.parse(answer_sdp)
    media = next(m for m in description.media if m.kind == "video" and m.rtp.muxId == mid)
    if not any(e.uri == RTP_STREAM_ID for e in media.rtp.headerExtensions):
        return None
    lines = next(  # aiortc's parser skips a=simulcast: read the section's lines
        lines
        for lines in sdp.grouplines(answer_sdp)[1]
        if lines[0].startswith("m=video") and f"a=mid:{mid}" in lines
    )
    for line in lines:
        if line.startswith("a=simulcast:"):
            fields = line[len("a=simulcast:"):].split()
            listed = dict(zip(fields[::2], fields[1::2])).get("recv", "")
            first = [stream.split(",")[0] for stream in listed.split(";") if stream]
            return [rid for rid in first if not rid.startswith("~")] if first else None
    return None
