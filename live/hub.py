"""The relay's entry point: live shows, their publisher and viewer sessions.

Transport-free: the web layer turns WHIP/WHEP requests into ``publish``/``play``/``stop``
calls and maps ``LiveError.code`` to HTTP replies. Authorisation and show existence are
its job too. A show is live from a successful ``publish`` until its publisher is
stopped (``stop`` on its session, or ``end``) or the hub closes; then every viewer is
closed and ``ShowEnded`` fires once.

A publisher whose connection fails or closes, or that sends no media for
``media_timeout`` seconds, does not end the show: the show is *reconnecting*
(``ShowReconnecting``) for up to ``publisher_grace`` seconds. Its viewers keep their
connections and sessions; a ``publish`` for the show in that time resumes it
(``ShowResumed``) under the same viewers, whose RTP continues on the same SSRC with
running sequence numbers and timestamps, and into the same recording. Only when the
grace runs out does the show end, with the reason the publisher was lost for.

A hub can also be an *edge* for a show published on another hub (``pull``): it
receives the show once from that origin over WHEP and serves its own viewers from it
exactly as from a publisher. Edge shows emit no ``ShowStarted``/``ShowEnded`` (the
origin's hub does; an edge neither records nor owns the show's status), are not
``is_live`` (that means "published here") but ``is_pulled``, and end when the origin
closes the connection, when no frame arrives for ``media_timeout`` seconds, or after
``edge_linger`` seconds without a viewer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Optional, Union

from aiortc import RTCIceServer

from live.errors import (
    BadOffer,
    PublisherExists,
    RelayUnavailable,
    ShowNotLive,
    TooManyViewers,
    UnknownSession,
)
from live.ice_sockets import IceSockets
from live.keyframes import DEFAULT_MIN_INTERVAL
from live.publisher import Publisher, SendOffer
from live.recorder import Recorder, recording_suffix
from live.sdp import Offer, accepts, parse_offer
from live.simulcast import SimulcastTrack
from live.track_fanout import DEFAULT_REPLAY_WINDOW, TrackFanout
from live.viewer import Viewer

logger = logging.getLogger(__name__)

# origin shows: deleted, ice_failed, no_media, shutdown; edge shows (no event) also
# origin_ended (the origin closed the connection), idle (no viewer for edge_linger s)
# and superseded (the show was published on this hub: the origin moved here).
EndReason = Literal[
    "deleted", "ice_failed", "no_media", "shutdown", "origin_ended", "idle", "superseded"
]

DEFAULT_EDGE_LINGER = 10.0  # seconds an edge keeps a show no local viewer watches
# Seconds a show waits for its lost publisher to come back (Mux keeps a stream 60 s).
DEFAULT_PUBLISHER_GRACE = 60.0
# Seconds a viewer may take to get connected (ICE and DTLS) before its session, and its
# UDP port, are freed: an offer nobody follows up must not hold a port for long.
DEFAULT_VIEWER_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ViewerCaps:
    """How many viewer sessions one client (an address, or an IPv6 /64: the web layer
    says who a client is), one show and the whole hub may hold; None: no cap."""

    per_client: Optional[int] = None
    per_show: Optional[int] = None
    per_node: Optional[int] = None


@dataclass(frozen=True)
class Session:
    id: str
    show_id: int
    answer_sdp: str  # for "edge": the origin's answer to the edge's offer
    kind: Literal["publisher", "viewer", "edge"]


@dataclass(frozen=True)
class ShowStarted:
    show_id: int
    started_at: datetime  # UTC
    recording_path: Optional[str]


@dataclass(frozen=True)
class ShowEnded:
    show_id: int
    ended_at: datetime  # UTC
    recording_path: Optional[str]  # None if nothing was recorded
    reason: str  # EndReason


@dataclass(frozen=True)
class ShowReconnecting:
    """The publisher was lost (``reason``: ice_failed or no_media); the show waits for
    it until ``deadline``."""

    show_id: int
    at: datetime  # UTC
    deadline: datetime  # UTC: the show ends then unless a publisher resumes it
    reason: str


@dataclass(frozen=True)
class ShowResumed:
    show_id: int
    at: datetime  # UTC
    reconnecting_seconds: float  # how long viewers were without a publisher
    # This hub was an edge for the show and took it over from its dead origin: the
    # show is published (and claimed) here now, recorded into a new part at this path.
    taken_over: bool = False
    recording_path: Optional[str] = None


ShowEvent = Union[ShowStarted, ShowEnded, ShowReconnecting, ShowResumed]


class _Show:
    def __init__(
        self, show_id: int, session_id: str, started_at: datetime, *, edge: bool = False
    ) -> None:
        self.id = show_id
        self.session_id = session_id
        self.started_at = started_at
        self.edge = edge  # pulled from an origin: no events, no recording
        self.publisher: Optional[Publisher] = None  # None while reconnecting
        # The show's tracks and recording outlive any one publisher (resume).
        self.tracks: dict[str, Union[TrackFanout, SimulcastTrack]] = {}
        self.recorder: Optional[Recorder] = None
        self.lost_at: Optional[float] = None  # reconnecting since (monotonic)
        self.lost_reason: EndReason = "ice_failed"
        self.resuming = False  # a publish is negotiating a resume
        self.viewers: dict[str, Viewer] = {}
        self.ending = False
        self.announced = False  # live: ShowStarted was emitted (origin) / pulled (edge)
        self.ready = asyncio.Event()  # publish()/pull() finished, one way or the other
        self.failure: Optional[BaseException] = None  # why pull() failed, for its waiters
        self.idle_since: Optional[float] = time.monotonic() if edge else None
        self.answer_sdp = ""

    @property
    def reconnecting(self) -> bool:
        return self.lost_at is not None


class LiveHub:
    def __init__(
        self,
        *,
        ice_servers: Sequence[RTCIceServer] = (),
        recordings_dir: Optional[Path] = None,
        on_event: Optional[Callable[[ShowEvent], Awaitable[None]]] = None,
        media_timeout: float = 10.0,
        viewer_timeout: float = 30.0,
        keyframe_interval: float = DEFAULT_MIN_INTERVAL,
        replay_window: float = DEFAULT_REPLAY_WINDOW,
        public_ip: Optional[str] = None,
        udp_ports: Optional[tuple[int, int]] = None,
        session_prefix: str = "",
        edge_linger: float = DEFAULT_EDGE_LINGER,
        publisher_grace: float = DEFAULT_PUBLISHER_GRACE,
        viewer_caps: ViewerCaps = ViewerCaps(),
        viewer_connect_timeout: float = DEFAULT_VIEWER_CONNECT_TIMEOUT,
    ) -> None:
        # ``session_prefix`` starts every session id (e.g. "n1."), so a balancer can
        # route a DELETE on a WHIP/WHEP resource to the node that holds the session.
        self._session_prefix = session_prefix
        self._edge_linger = edge_linger
        self._publisher_grace = publisher_grace
        self._viewer_caps = viewer_caps
        self._viewer_connect_timeout = viewer_connect_timeout
        self._viewers_refused: dict[str, int] = {"client": 0, "show": 0, "node": 0}
        self._viewers_never_connected = 0
        self._ice_servers = list(ice_servers)
        # Host candidates announce ``public_ip`` and bind in ``udp_ports`` (both ends
        # included); raises ValueError at start-up for a malformed address or range.
        self._ice_sockets = IceSockets(public_ip=public_ip, ports=udp_ports)
        self._recordings_dir = Path(recordings_dir) if recordings_dir is not None else None
        self._on_event = on_event
        self._media_timeout = media_timeout
        self._viewer_timeout = viewer_timeout
        self._keyframe_interval = keyframe_interval
        self._replay_window = replay_window
        self._tick_interval = min(
            1.0,
            media_timeout / 4,
            viewer_timeout / 4,
            viewer_connect_timeout / 4,
            max(edge_linger, 0.4) / 4,
            max(publisher_grace, 0.4) / 4,
        )
        self._shows: dict[int, _Show] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._ticker: Optional[asyncio.Task[None]] = None
        self._closed = False
        self._totals: dict[str, int] = {}
        self._viewers_reaped = 0
        self._shows_started = 0
        self._shows_ended = 0
        self._edge_pulls = 0
        self._publishers_lost = 0
        self._shows_resumed = 0
        self._recordings_failed = 0
        self._shows_taken_over = 0

    # --- public interface -----------------------------------------------------------

    async def publish(self, show_id: int, offer_sdp: str) -> Session:
        """Start publishing a show (WHIP), or resume one that is reconnecting. Raises
        BadOffer (resuming: also an offer without the show's codec), PublisherExists
        (the show has a publisher) or RelayUnavailable (after ``close()``, or no free
        port in ``udp_ports``)."""
        if self._closed:
            raise RelayUnavailable("the relay is shutting down")
        offer = parse_offer(offer_sdp, role="publisher")
        existing = self._shows.get(show_id)
        if existing is not None and existing.edge:
            # The show is published here now, so whatever origin the edge pulled from
            # is gone (the web layer found no live origin): its viewers stay and get the
            # new publisher, unless it cannot feed their tracks; then they come back.
            if self._can_take_over(existing, offer):
                return await self._take_over(existing, offer)
            await self._end_show(existing, "superseded")
            existing = self._shows.get(show_id)
        if existing is not None and existing.reconnecting and not existing.ending:
            return await self._resume(existing, offer)
        if show_id in self._shows:
            raise PublisherExists(f"show {show_id} already has a publisher")
        started_at = datetime.now(timezone.utc)
        show = _Show(show_id, self._new_session_id(), started_at)
        self._shows[show_id] = show  # reserved before the first await
        video = offer.first("video")
        recording = self._recording_path(show_id, started_at, video.codecs[0].name.lower() if video else None)
        publisher = self._ingest(show, recording, lost="ice_failed")
        try:
            answer = await publisher.negotiate(offer)
        except BaseException:
            await self._abandon(show)
            raise
        self._adopt_media(show, publisher)
        self._ensure_ticker()
        self._shows_started += 1
        recorder = publisher.recorder
        await self._emit(
            ShowStarted(show_id, started_at, str(recorder.path) if recorder else None)
        )
        show.announced = True
        show.ready.set()
        return Session(show.session_id, show_id, answer, "publisher")

    async def play(
        self, show_id: int, offer_sdp: str, *, max_quality: Optional[int] = None, client: Optional[str] = None
    ) -> Session:
        """Join a live show as a viewer (WHEP); a reconnecting show too (the picture
        comes when the publisher is back). ``max_quality`` caps a simulcast show's
        layer for this viewer (0 the smallest picture; None: whatever its link
        carries). ``client`` says who asks (the web layer's key for an address), for
        the per-client cap; None is not counted (another node forwarding). Raises
        ShowNotLive, BadOffer, TooManyViewers or RelayUnavailable (no free port in
        ``udp_ports``)."""
        show = self._shows.get(show_id)
        if show is None or show.ending or not show.tracks or not show.ready.is_set():
            raise ShowNotLive(f"show {show_id} is not live")
        offer = parse_offer(offer_sdp, role="viewer")
        self._admit_viewer(show, client)
        tracks = {}
        for media in offer.media:
            track = show.tracks.get(media.kind)
            if track is not None and media.kind not in tracks and accepts(media, track.capability):
                tracks[media.kind] = track
        if not tracks:
            sent = ", ".join(t.capability.mimeType for t in show.tracks.values())
            raise BadOffer(f"the offer cannot receive this show ({sent})")
        viewer = Viewer(
            self._new_session_id(),
            show_id,
            ice_servers=self._ice_servers,
            ice_sockets=self._ice_sockets,
            on_gone=lambda gone, reason: self._viewer_gone(show, gone, reason),
            max_quality=max_quality,
            client=client,
        )
        show.viewers[viewer.session_id] = viewer
        try:
            answer = await viewer.negotiate(offer, tracks)
        except BaseException as exc:
            show.viewers.pop(viewer.session_id, None)
            await _quietly(viewer.close())
            if show.ending and isinstance(exc, Exception):
                raise ShowNotLive(f"show {show_id} ended") from exc
            raise
        if show.ending or viewer.closed:
            await _quietly(viewer.close())
            raise ShowNotLive(f"show {show_id} ended")
        return Session(viewer.session_id, show_id, answer, "viewer")

    async def pull(self, show_id: int, send_offer: SendOffer) -> Session:
        """Become an edge for a show published elsewhere: offer to receive it, let
        ``send_offer`` carry the offer to the origin's WHEP endpoint and return its
        answer, then serve ``play`` from it. Concurrent and repeated calls share one
        pull. Raises what ``send_offer`` raises (ShowNotLive when the origin has no
        such show), OriginUnavailable for an unusable answer, PublisherExists if the
        show is published on this hub, RelayUnavailable after ``close()`` or without a
        free port."""
        if self._closed:
            raise RelayUnavailable("the relay is shutting down")
        show = self._shows.get(show_id)
        if show is not None:
            if not show.edge:
                raise PublisherExists(f"show {show_id} is published on this relay")
            await show.ready.wait()
            if isinstance(show.failure, Exception):  # the shared pull's error, not a cancel
                raise show.failure
            if show.ending:
                raise ShowNotLive(f"show {show_id} ended")
            return Session(show.session_id, show_id, show.answer_sdp, "edge")
        show = _Show(show_id, self._new_session_id(), datetime.now(timezone.utc), edge=True)
        self._shows[show_id] = show  # reserved before the first await: one pull per show
        publisher = self._ingest(show, None, lost="origin_ended")  # the origin records
        try:
            show.answer_sdp = await publisher.pull(send_offer)
        except BaseException as exc:
            await self._abandon(show, failure=exc)
            raise
        if show.ending:  # close() began meanwhile
            show.ready.set()
            raise ShowNotLive(f"show {show_id} ended")
        self._adopt_media(show, publisher)
        self._ensure_ticker()
        self._edge_pulls += 1
        show.idle_since = time.monotonic()  # the linger starts once media can flow
        show.announced = True
        show.ready.set()
        logger.info("show %s: pulled from its origin (edge session %s)", show_id, show.session_id)
        return Session(show.session_id, show_id, show.answer_sdp, "edge")

    async def repull(self, show_id: int, send_offer: SendOffer) -> Session:
        """An edge show whose origin moved (its host published again through another
        node): pull it from the new origin under the same viewers, whose RTP carries on
        as in a resume. Raises ShowNotLive if this hub holds no such edge show, and what
        ``pull`` raises."""
        show = self._shows.get(show_id)
        if show is None or not show.edge or show.ending or not show.announced:
            raise ShowNotLive(f"show {show_id} is not pulled here")
        if show.resuming:
            raise PublisherExists(f"show {show_id} is being pulled again already")
        show.resuming = True
        publisher = self._ingest(show, None, lost="origin_ended", resume=True)
        try:
            answer = await publisher.pull(send_offer)
        except BaseException:
            await _quietly(publisher.close())
            raise
        finally:
            show.resuming = False
        if show.ending:
            await _quietly(publisher.close())
            raise ShowNotLive(f"show {show_id} ended")
        previous, show.publisher = show.publisher, publisher
        if previous is not None:
            self._spawn(previous.close())
        show.lost_at = None
        show.answer_sdp = answer
        now = time.monotonic()
        for viewer in show.viewers.values():
            viewer.last_heard = max(viewer.last_heard, now)
        self._edge_pulls += 1
        logger.info("show %s: pulled again from its new origin", show_id)
        return Session(show.session_id, show_id, answer, "edge")

    def origin_lost(self, show_id: int) -> None:
        """The web layer learnt that an edge show's origin node died: hold the viewers
        for the grace now rather than when the pull's ICE gives up."""
        show = self._shows.get(show_id)
        if show is not None and show.edge and show.publisher is not None and not show.ending:
            self._publisher_lost(show, show.publisher, "ice_failed")

    def needs_origin(self, show_id: int) -> bool:
        """An edge show that lost its origin and waits for one."""
        show = self._shows.get(show_id)
        return show is not None and show.edge and show.publisher is None and not show.ending

    def edge_shows(self) -> list[int]:
        """Shows this hub pulls from an origin (or held for a new one)."""
        return [s.id for s in self._shows.values() if s.edge and s.announced and not s.ending]

    async def stop(self, show_id: int, session_id: str, *, viewer_only: bool = False) -> None:
        """Stop a publisher (ends the show, also while it is reconnecting: the lost
        publisher's session still names it) or a viewer. ``viewer_only``: a publisher's
        session is unknown here (WHEP's DELETE must never end a show). Raises
        UnknownSession."""
        show = self._shows.get(show_id)
        if show is None:
            raise UnknownSession(f"no session {session_id} on show {show_id}")
        if session_id == show.session_id and not viewer_only:
            await self._end_show(show, "deleted")
            return
        viewer = show.viewers.pop(session_id, None)
        if viewer is None:
            raise UnknownSession(f"no session {session_id} on show {show_id}")
        await viewer.close()

    def set_quality(self, show_id: int, session_id: str, max_quality: Optional[int]) -> None:
        """A viewer's quality choice (the watch page's data saver). Raises
        UnknownSession."""
        show = self._shows.get(show_id)
        viewer = show.viewers.get(session_id) if show is not None else None
        if viewer is None:
            raise UnknownSession(f"no viewer session {session_id} on show {show_id}")
        viewer.set_max_quality(max_quality)

    async def end(self, show_id: int) -> bool:
        """End a show published here, whatever its state (the host's End button when
        the page no longer holds the WHIP session). False if the hub has no such show."""
        show = self._shows.get(show_id)
        if show is None or show.edge or not show.announced:
            return False
        await self._end_show(show, "deleted")
        return True

    def is_live(self, show_id: int) -> bool:
        """The show is published on this hub (it is the show's origin), or reconnecting
        here: this hub holds its viewers and its recording until the grace runs out."""
        show = self._shows.get(show_id)
        return show is not None and not show.edge and show.announced and not show.ending

    def is_reconnecting(self, show_id: int) -> bool:
        show = self._shows.get(show_id)
        return show is not None and show.reconnecting and not show.ending

    def is_pulled(self, show_id: int) -> bool:
        """This hub is an edge for the show: ``play`` serves it from the origin's stream."""
        show = self._shows.get(show_id)
        return show is not None and show.edge and show.announced and not show.ending

    def stats(self) -> dict[str, Any]:
        """For metrics: gauges, counters (``*_total``) and a ``shows`` breakdown."""
        totals = dict(self._totals)
        shows: dict[int, Any] = {}
        viewers = waiting = edges = reconnecting = 0
        for show in self._shows.values():
            if not show.tracks or not show.announced:
                continue
            tracks = {}
            for kind, track in show.tracks.items():
                counters = track.counters()
                _add(totals, counters)
                tracks[kind] = dict(
                    counters,
                    codec=track.codec_name,
                    waiting=track.waiting,
                    worst_viewer_loss=track.worst_viewer_loss(),
                )
                if isinstance(track, SimulcastTrack):
                    tracks[kind]["layers"] = track.layer_stats()
                    if show.publisher is not None:
                        tracks[kind].update(show.publisher.ingest_counters())
                waiting += track.waiting
                if track.keyframes is not None:
                    _add(totals, _keyframe_counters(track))
            if show.recorder is not None:
                totals["recording_drops"] = totals.get("recording_drops", 0) + show.recorder.dropped
            viewers += len(show.viewers)
            edges += show.edge
            reconnecting += show.reconnecting
            shows[show.id] = {
                "edge": show.edge,
                "reconnecting": show.reconnecting,
                "viewers": len(show.viewers),
                "tracks": tracks,
                "frames_in_unnegotiated_codec": (
                    show.publisher.codec_switches if show.publisher is not None else 0
                ),
            }
        return {
            # gauges (live_shows and publishers: shows published here; edge_shows: pulled)
            "live_shows": len(shows) - edges,
            "publishers": len(shows) - edges,
            "edge_shows": edges,
            "reconnecting_shows": reconnecting,
            "viewers": viewers,
            "viewers_waiting_for_keyframe": waiting,
            # counters since the hub started (``_total``: Prometheus counters)
            "shows_started_total": self._shows_started,
            "shows_ended_total": self._shows_ended,
            "viewers_reaped_total": self._viewers_reaped,
            "viewers_never_connected_total": self._viewers_never_connected,
            **{f"viewers_refused_per_{scope}_total": n for scope, n in self._viewers_refused.items()},
            "edge_pulls_total": self._edge_pulls,
            "publishers_lost_total": self._publishers_lost,
            "shows_resumed_total": self._shows_resumed,
            "shows_taken_over_total": self._shows_taken_over,
            "recordings_failed_total": self._recordings_failed,
            "frames_received_total": totals.get("frames", 0) + totals.get("frames_skipped", 0),
            "frames_skipped_total": totals.get("frames_skipped", 0),
            "packets_forwarded_total": totals.get("packets_forwarded", 0),
            "bytes_forwarded_total": totals.get("bytes_forwarded", 0),
            "retransmits_total": totals.get("retransmits", 0),
            "nacks_received_total": totals.get("nacks", 0),
            "keyframe_requests_total": totals.get("keyframe_requests", 0),
            "plis_sent_total": totals.get("plis_sent", 0),
            "drops_total": totals.get("drops", 0),
            "layer_switches_total": totals.get("layer_switches", 0),
            "padding_bytes_total": totals.get("padding_bytes", 0),  # simulcast probes
            "recording_drops_total": totals.get("recording_drops", 0),
            # per live show: viewers and per-track counters
            "shows": shows,
        }

    async def close(self) -> None:
        """Graceful shutdown: end every show ("shutdown") and close every connection."""
        self._closed = True
        await asyncio.gather(
            *(self._end_show(show, "shutdown") for show in list(self._shows.values())),
            return_exceptions=True,
        )
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- lifecycle ------------------------------------------------------------------

    def _ingest(
        self,
        show: _Show,
        recording_path: Optional[Path],
        *,
        lost: EndReason,
        resume: bool = False,
    ) -> Publisher:
        """The show's source: a WHIP publisher here, or an edge's pull from the origin.
        Its connection failing or closing is `lost` (an edge show ends; a published one
        waits for its publisher). Resuming, it feeds the show's existing tracks."""
        publisher = Publisher(
            show.id,
            ice_servers=self._ice_servers,
            ice_sockets=self._ice_sockets,
            recording_path=recording_path,
            on_connection_lost=lambda: self._publisher_lost(show, publisher, lost),
            spawn=self._spawn,
            keyframe_interval=self._keyframe_interval,
            replay_window=self._replay_window,
            resume=(show.tracks, show.recorder) if resume else None,
        )
        if not resume:
            show.publisher = publisher
        return publisher

    def _adopt_media(self, show: _Show, publisher: Publisher) -> None:
        """The first publisher's tracks and recording become the show's."""
        show.tracks = dict(publisher.tracks)
        show.recorder = publisher.recorder

    def _can_take_over(self, show: _Show, offer: Offer) -> bool:
        """Whether a publisher's offer can feed an edge show's tracks (same codecs; a
        simulcast track needs as many layers), so its viewers keep their connections."""
        if show.ending or not show.announced or show.resuming or not show.tracks:
            return False
        for kind, track in show.tracks.items():
            media = offer.first(kind)
            if media is None:
                continue
            if not any(c.name.lower() == track.codec_name for c in media.codecs):
                return False
            if kind == "video" and isinstance(track, SimulcastTrack):
                if media.simulcast is None or len(media.simulcast.rids) != len(track.layers):
                    return False
            # A single-layer track (an edge pulls one layer) takes any publisher: a
            # simulcast one feeds it its largest layer (Publisher._feed_one_layer).
        return True

    async def _take_over(self, show: _Show, offer: Offer) -> Session:
        """This hub is an edge for the show and its host publishes here: the origin is
        gone. The pull is dropped, the show becomes published here, the new publisher
        goes under the edge's viewers as a resume does, and the recording starts a new
        part (the origin's part stays where the origin wrote it)."""
        pull = show.publisher
        show.publisher = None
        if pull is not None:
            self._spawn(pull.close())
        if show.lost_at is None:
            show.lost_at = time.monotonic()
        show.edge = False
        show.idle_since = None
        video = show.tracks.get("video")
        recording = self._recording_path(show.id, datetime.now(timezone.utc), video.codec_name if video else None)
        self._shows_taken_over += 1
        logger.info("show %s: taken over from its lost origin", show.id)
        return await self._resume(show, offer, recording_path=recording, taken_over=True)

    async def _resume(
        self, show: _Show, offer: Offer, *, recording_path: Optional[Path] = None, taken_over: bool = False
    ) -> Session:
        """A publisher for a reconnecting show: the same tracks, viewers and recording
        (a taken-over show: a new recording at ``recording_path``)."""
        if show.resuming:
            raise PublisherExists(f"show {show.id} is being resumed by another publisher")
        show.resuming = True  # before the first await: one resume at a time
        publisher = self._ingest(show, recording_path, lost="ice_failed", resume=True)
        try:
            answer = await publisher.negotiate(offer)
        except BaseException:
            await _quietly(publisher.close())  # the show keeps waiting for its publisher
            raise
        finally:
            show.resuming = False
        if show.ending:  # the grace ran out, or close(), while negotiating
            await _quietly(publisher.close())
            raise ShowNotLive(f"show {show.id} ended")
        away = time.monotonic() - (show.lost_at or time.monotonic())
        show.publisher = publisher
        if show.recorder is None:
            show.recorder = publisher.recorder  # a taken-over show's new part
        show.session_id = self._new_session_id()
        show.lost_at = None
        now = time.monotonic()
        for viewer in show.viewers.values():
            viewer.last_heard = max(viewer.last_heard, now)  # silence while away is no fault
        self._shows_resumed += 1
        logger.info("show %s: resumed by a new publisher after %.1f s", show.id, away)
        recorded = str(show.recorder.path) if taken_over and show.recorder is not None else None
        await self._emit(ShowResumed(show.id, datetime.now(timezone.utc), away, taken_over, recorded))
        return Session(show.session_id, show.id, answer, "publisher")

    def _publisher_lost(self, show: _Show, publisher: Publisher, reason: EndReason) -> None:
        """The publisher's connection failed or closed, or it sent no media. An edge
        show ends (its origin decides what the show does); a show published here waits
        ``publisher_grace`` seconds for its host to come back."""
        if show.ending or show.publisher is not publisher:
            return  # already handled, or a lost resume attempt that never took over
        if not show.announced or show.edge and publisher.pc.connectionState == "closed":
            self._end_soon(show, reason)  # an origin that closed the pull ended the show
            return
        if show.edge:
            # The origin failed (its node died): the viewers are held for the grace,
            # for this hub to take the show over or pull it from a new origin.
            show.publisher = None
            show.lost_at = time.monotonic()
            show.lost_reason = reason
            self._spawn(publisher.close())
            logger.info("show %s: lost its origin; holding its viewers %.0f s", show.id, self._publisher_grace)
            return
        show.publisher = None
        show.lost_at = time.monotonic()
        show.lost_reason = reason
        self._publishers_lost += 1
        self._spawn(publisher.close())
        logger.info(
            "show %s: publisher lost (%s); waiting %.0f s for it", show.id, reason, self._publisher_grace
        )
        at = datetime.now(timezone.utc)
        self._spawn(
            self._emit(
                ShowReconnecting(show.id, at, at + timedelta(seconds=self._publisher_grace), reason)
            )
        )

    async def _abandon(self, show: _Show, failure: Optional[BaseException] = None) -> None:
        """A show whose publish or pull failed: its id is free again, and whoever
        waits on it (a concurrent pull) sees it end, with `failure`."""
        if self._shows.get(show.id) is show:
            del self._shows[show.id]
        show.ending = True
        show.failure = failure
        show.ready.set()
        publisher = show.publisher
        if publisher is not None:
            await _quietly(publisher.close())
            for track in publisher.tracks.values():
                track.close()
            if publisher.recorder is not None:
                await _quietly(publisher.recorder.close())

    async def _end_show(self, show: _Show, reason: EndReason) -> None:
        if show.ending:
            return
        show.ending = True
        if self._shows.get(show.id) is show:
            del self._shows[show.id]
        await show.ready.wait()  # ShowStarted (if any) goes out before ShowEnded
        viewers = list(show.viewers.values())
        show.viewers.clear()
        if show.announced:
            self._absorb_counters(show)
        await asyncio.gather(*(_quietly(v.close()) for v in viewers))
        if show.publisher is not None:
            await _quietly(show.publisher.close())
        for track in show.tracks.values():
            track.close()
        recording = None
        if show.recorder is not None:
            try:
                recording = await show.recorder.close()
            except Exception:
                logger.exception("show %s: finishing the recording failed", show.id)
            if show.recorder.failed and show.announced:
                self._recordings_failed += 1
                logger.warning("show %s: the recording failed (%s)", show.id, show.recorder.error)
        if show.announced and not show.edge:
            self._shows_ended += 1
            await self._emit(
                ShowEnded(
                    show.id,
                    datetime.now(timezone.utc),
                    str(recording) if recording is not None else None,
                    reason,
                )
            )

    def _end_soon(self, show: _Show, reason: EndReason) -> None:
        if not show.ending:
            self._spawn(self._end_show(show, reason))

    def _admit_viewer(self, show: _Show, client: Optional[str]) -> None:
        """Raise TooManyViewers if a cap is reached. Counted from the sessions held
        (negotiating ones included), so the counts cannot drift from the truth."""
        caps = self._viewer_caps
        scope = None
        if caps.per_show is not None and len(show.viewers) >= caps.per_show:
            scope = "show"
        elif caps.per_node is not None and sum(len(s.viewers) for s in self._shows.values()) >= caps.per_node:
            scope = "node"
        elif caps.per_client is not None and client is not None:
            held = sum(1 for s in self._shows.values() for v in s.viewers.values() if v.client == client)
            if held >= caps.per_client:
                scope = "client"
        if scope is not None:
            self._viewers_refused[scope] += 1
            raise TooManyViewers(f"too many viewer sessions for this {scope}", scope)

    def _viewer_gone(self, show: _Show, viewer: Viewer, reason: str) -> None:
        if show.viewers.get(viewer.session_id) is viewer:
            del show.viewers[viewer.session_id]
            self._viewers_reaped += 1
            logger.info("show %s: viewer %s reaped (%s)", show.id, viewer.session_id, reason)
            self._spawn(viewer.close())

    def _tick(self) -> None:
        now = time.monotonic()
        for show in list(self._shows.values()):
            if show.ending or not show.announced or not show.tracks:
                continue
            publisher = show.publisher
            if show.lost_at is not None:
                if now - show.lost_at > self._publisher_grace:
                    self._end_soon(show, show.lost_reason)
                    continue
            elif publisher is not None and now - publisher.last_media > self._media_timeout:
                if not show.edge:
                    self._publisher_lost(show, publisher, "no_media")
                elif now - publisher.last_media > self._media_timeout + self._publisher_grace:
                    # An origin whose publisher is away sends nothing for up to its
                    # grace; the edge holds its viewers as long as the origin would.
                    self._end_soon(show, "no_media")
                    continue
            use_publisher_clock = all(t.clock.has_publisher_report for t in show.tracks.values())
            for track in show.tracks.values():
                track.tick(now, use_publisher_clock=use_publisher_clock)
            for viewer in list(show.viewers.values()):
                # Viewers may fall silent while there is no media to report on; a dead
                # one's ICE consent still fails and reaps it.
                if viewer.connected_at is None:
                    if now - viewer.created_at > self._viewer_connect_timeout:
                        self._viewers_never_connected += 1
                        self._viewer_gone(show, viewer, "never connected")
                elif show.lost_at is None and now - viewer.last_heard > self._viewer_timeout:
                    self._viewer_gone(show, viewer, "no RTCP")
                else:
                    viewer.follow_ice()
            if show.edge:
                if show.viewers:
                    show.idle_since = None
                elif show.idle_since is None:
                    show.idle_since = now
                elif now - show.idle_since > self._edge_linger:
                    self._end_soon(show, "idle")

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval)
            try:
                self._tick()
            except Exception:
                logger.exception("relay housekeeping failed")

    def _ensure_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick_forever())

    # --- helpers --------------------------------------------------------------------

    def _new_session_id(self) -> str:
        return self._session_prefix + secrets.token_urlsafe(12)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("relay task failed", exc_info=task.exception())

    async def _emit(self, event: ShowEvent) -> None:
        if self._on_event is None:
            return
        try:
            await self._on_event(event)
        except Exception:
            logger.exception("on_event(%s) failed", type(event).__name__)

    def _recording_path(
        self, show_id: int, started_at: datetime, video_codec: Optional[str]
    ) -> Optional[Path]:
        if self._recordings_dir is None:
            return None
        stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
        suffix = recording_suffix(video_codec)
        path = self._recordings_dir / f"show-{show_id}-{stamp}{suffix}"
        counter = 1
        while path.exists():
            path = self._recordings_dir / f"show-{show_id}-{stamp}-{counter}{suffix}"
            counter += 1
        return path

    def _absorb_counters(self, show: _Show) -> None:
        for track in show.tracks.values():
            _add(self._totals, track.counters())
            if track.keyframes is not None:
                _add(self._totals, _keyframe_counters(track))
        if show.recorder is not None:
            _add(self._totals, {"recording_drops": show.recorder.dropped})


def _keyframe_counters(track: Any) -> dict[str, int]:
    return {"keyframe_requests": track.keyframes.requests, "plis_sent": track.keyframes.sent}


def _add(totals: dict[str, int], counters: dict[str, int]) -> None:
    for key, value in counters.items():
        totals[key] = totals.get(key, 0) + value


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("cleanup failed")
