"""WHIP ingest and WHEP playback routes (RFC 9725 and the WHEP draft) over live.LiveHub.

The hub knows nothing of HTTP, users or the database: this module authorises the
host, checks the show exists, records status changes in the database and tells the
show room (`show_status`) when the hub reports a show starting, reconnecting (its
publisher was lost), resuming or ending.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

import redis.asyncio as aioredis
from aiohttp import web
from aiortc import RTCIceServer

from live.errors import (BadOffer, LiveError, OriginUnavailable, PublisherExists, RelayUnavailable, ShowNotLive,
                         TooManyViewers, UnknownSession)
from live.hub import LiveHub, ShowEnded, ShowReconnecting, ShowResumed, ShowStarted, ViewerCaps
from live.ice_sockets import parse_port_range
from live.recording_parts import join_parts
from live.sdp import MAX_OFFER_BYTES
from orders import shows
from orders.models import ShowStatus
from web.appkeys import DB, EVENTS, REDIS, SETTINGS
from web.auth import require_user
from web.client_address import client_group
from web.errors import EXTRA, json_error, json_response
from web.media_origin import ShowOrigins, was_forwarded
from web.metrics import register_stats
from web.turn import IceServer, ice_servers_for
from web.validation import Body, int_param, parse_body

log = logging.getLogger(__name__)

HUB = web.AppKey("live_hub", LiveHub)
ORIGINS = web.AppKey("show_origins", ShowOrigins)
# Shows on air that no node holds, since when (monotonic): they end after the grace.
ORPHANED = web.AppKey("orphaned_shows", dict)
FOLLOW_EVERY = 1.0  # seconds between checks of the edge shows' origins
SDP = "application/sdp"

EXTRA.update(
    {
        BadOffer: (400, "bad_offer"),
        PublisherExists: (409, "publisher_exists"),
        ShowNotLive: (409, "show_not_live"),
        UnknownSession: (404, "unknown_session"),
        RelayUnavailable: (503, "relay_unavailable"),  # shutting down, or no free UDP port
        OriginUnavailable: (503, "origin_unavailable"),  # an edge could not pull the show
        LiveError: (400, "live_error"),
    }
)


def parse_ice_server(url: str) -> RTCIceServer:
    """`stun:host:port` or `turn:user:secret@host:port?transport=udp` → RTCIceServer."""
    scheme, _, rest = url.partition(":")
    if "@" in rest:
        creds, _, address = rest.rpartition("@")
        username, _, credential = creds.partition(":")
        return RTCIceServer(f"{scheme}:{address}", username=unquote(username), credential=unquote(credential))
    return RTCIceServer(url)


async def _read_offer(request: web.Request) -> str:
    if request.content_type != SDP:
        raise BadOffer(f"send the offer as {SDP}")
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_OFFER_BYTES, actual_size=request.content_length)
    # The whole body (read in time by web/body_timeout.py, within client_max_size): a
    # stream read(n) would return only what has arrived so far.
    raw = await request.read()
    if len(raw) > MAX_OFFER_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_OFFER_BYTES, actual_size=len(raw))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadOffer("the offer is not UTF-8 text") from None


def ice_servers(request: web.Request, label: str) -> list[IceServer]:
    settings = request.app[SETTINGS]
    stun = tuple(u for u in settings.ice_servers if u.startswith("stun"))
    return ice_servers_for(
        label, stun_urls=stun, turn_urls=settings.turn_urls, turn_secret=settings.turn_secret,
        turn_ttl=settings.turn_ttl,
    )


def _answer(request: web.Request, session, resource: str) -> web.Response:
    response = web.Response(
        status=201,
        body=session.answer_sdp.encode(),
        content_type=SDP,
        headers={"Location": resource, "ETag": f'"{session.id}"'},
    )
    for server in ice_servers(request, session.id):
        for value in server.link_headers():
            response.headers.add("Link", value)
    return response


async def ice_servers_json(request: web.Request) -> web.Response:
    """ICE servers for the pages' RTCPeerConnection, TURN credentials minted per call."""
    return json_response({"ice_servers": [s.as_json() for s in ice_servers(request, secrets.token_hex(6))]})


async def _origin_elsewhere(request: web.Request, show_id: int) -> str | None:
    if was_forwarded(request, request.app[SETTINGS].secret) or request.app[HUB].is_live(show_id):
        return None
    return await request.app[ORIGINS].elsewhere(show_id)


async def whip_publish(request: web.Request) -> web.Response:
    show_id = int_param(request, "show_id")
    user = await require_user(request)
    async with request.app[DB].session() as session:
        show = await shows.get_show(session, show_id)
        shows.require_host(user, show)
    offer = await _read_offer(request)
    if origin := await _origin_elsewhere(request, show_id):
        try:
            return await request.app[ORIGINS].forward(request, origin, offer.encode())
        except OriginUnavailable as exc:
            if not exc.refused:
                raise
            # The show's node is gone (nothing listens there): the host publishes here,
            # at once, and this node takes the show over.
            log.warning("show %s: its origin %s is gone; publishing here", show_id, origin)
    live = await request.app[HUB].publish(show_id, offer)
    log.info("show %s: user %s publishing", show_id, user.id)  # the session id is a capability: not logged
    return _answer(request, live, f"/whip/{show_id}/{live.id}")


async def whip_stop(request: web.Request) -> web.Response:
    show_id = int_param(request, "show_id")
    user = await require_user(request)
    async with request.app[DB].session() as session:
        shows.require_host(user, await shows.get_show(session, show_id))
    if origin := await _origin_elsewhere(request, show_id):
        return await request.app[ORIGINS].forward(request, origin, None)
    await request.app[HUB].stop(show_id, request.match_info["session_id"])
    return web.Response(status=200)


async def end_show(request: web.Request) -> web.Response:
    """The studio's End when the page holds no WHIP session (after a reload, or while
    the show is reconnecting): the host or an admin ends the show wherever it is held."""
    show_id = int_param(request, "show_id")
    user = await require_user(request)
    async with request.app[DB].session() as session:
        show = await shows.get_show(session, show_id)
        shows.require_host(user, show)
    if show.status not in shows.ON_AIR:
        return json_error(409, "show_not_live", "the show is not on air")
    if origin := await _origin_elsewhere(request, show_id):
        return await request.app[ORIGINS].forward(request, origin, None)
    if not await request.app[HUB].end(show_id):
        return json_error(409, "show_not_live", "no relay holds this show")
    log.info("show %s: ended by %s", show_id, user.id)
    return json_response({"status": "ended"})


async def whep_play(request: web.Request) -> web.Response:
    show_id = int_param(request, "show_id")
    async with request.app[DB].session() as session:
        show = await shows.get_show(session, show_id)  # 404 for an unknown show
    offer = await _read_offer(request)
    hub = request.app[HUB]
    if not (request.app[SETTINGS].edge_pull and hub.is_pulled(show_id)):
        if origin := await _origin_elsewhere(request, show_id):
            if not request.app[SETTINGS].edge_pull:
                return await request.app[ORIGINS].forward(request, origin, offer.encode())
            await _pull(request, show_id, origin)  # OriginUnavailable: 503 with Retry-After
    try:
        live = await hub.play(show_id, offer, client=_viewer_client(request))
    except ShowNotLive:
        if show.status in shows.ON_AIR:
            # On air, but no relay holds it just now: its node died and its host is
            # coming back through another one. The viewer retries, never sees "ended".
            raise OriginUnavailable("the show's relay is moving; retry") from None
        raise
    except TooManyViewers as exc:
        # The client's own cap: it holds its sessions already (429); the show's or the
        # node's: try again soon, or another node (503).
        status = 429 if exc.scope == "client" else 503
        response = json_error(status, "too_many_viewers", str(exc), scope=exc.scope)
        response.headers["Retry-After"] = "10"
        return response
    return _answer(request, live, f"/whep/{show_id}/{live.id}")


def _viewer_client(request: web.Request) -> str | None:
    """Who counts against the per-client cap: the client's address, an IPv6 /64 as one
    (a host hands its devices a whole /64). None for another node's forwarded request:
    its client was counted where it came in."""
    if was_forwarded(request, request.app[SETTINGS].secret):
        return None
    return client_group(request)


async def _pull(request: web.Request, show_id: int, origin: str) -> None:
    """Become an edge for the show. The hub shares one pull among concurrent callers,
    so a crowd of first viewers costs the origin one viewer."""
    origins = request.app[ORIGINS]
    request_id = request.headers.get("X-Request-Id")

    async def send_offer(offer_sdp: str) -> str:
        return await origins.offer(origin, show_id, offer_sdp, request_id)

    await request.app[HUB].pull(show_id, send_offer)
    origins.pulled_from.setdefault(show_id, origin)


QUALITIES = {"auto": None, "low": 0, "medium": 1, "high": 2}  # simulcast layer caps


class QualityIn(Body):
    max_quality: Literal["auto", "low", "medium", "high"]


async def whep_quality(request: web.Request) -> web.Response:
    """The watch page's data saver: cap the viewer's simulcast layer ("low" is the
    smallest picture; "auto" lets the viewer's link decide). A single-layer show
    accepts and ignores it. Like DELETE, the session id is the capability."""
    show_id = int_param(request, "show_id")
    body = await parse_body(request, QualityIn)
    session_id = request.match_info["session_id"]
    try:
        request.app[HUB].set_quality(show_id, session_id, QUALITIES[body.max_quality])
    except UnknownSession:
        if origin := await _origin_elsewhere(request, show_id):
            return await request.app[ORIGINS].forward(request, origin, await request.read())
        raise
    return web.Response(status=204)


async def whep_stop(request: web.Request) -> web.Response:
    # The session id is an unguessable capability handed to the viewer in Location.
    # It starts with the name of the node serving it (an edge, or the origin), which
    # nginx routes on; a session this node does not hold is the origin's.
    show_id = int_param(request, "show_id")
    try:
        # Only a viewer's session: the publisher's is ended through WHIP, by its host.
        await request.app[HUB].stop(show_id, request.match_info["session_id"], viewer_only=True)
    except UnknownSession:
        if origin := await _origin_elsewhere(request, show_id):
            return await request.app[ORIGINS].forward(request, origin, None)
        raise
    return web.Response(status=200)


async def trickle_not_supported(request: web.Request) -> web.Response:
    response = json_error(405, "method_not_allowed", "trickle ICE is not supported: send all candidates in the offer")
    response.headers["Allow"] = "DELETE"
    return response


async def recording(request: web.Request) -> web.StreamResponse:
    show_id = int_param(request, "show_id")
    async with request.app[DB].session() as session:
        show = await shows.get_show(session, show_id)
    if show.status is not ShowStatus.ended or not show.recording_path:
        return json_error(404, "no_recording", "this show has no recording yet")
    path = Path(show.recording_path)
    if not path.is_file():
        return json_error(404, "no_recording", "the recording file is missing")
    response = web.FileResponse(path)
    response.content_type = "video/webm" if path.suffix == ".webm" else "video/x-matroska"
    return response


async def end_orphaned_shows(app: web.Application, now: float | None = None) -> list[int]:
    """Follows the shows the database calls on air that no node holds any more: their
    node was killed (SIGKILL, power loss) before it could end them. Alone (no origin
    registry) a node holds every live show itself, so one its hub does not know of is
    left from before a restart. With a registry, a show is orphaned once its origin's
    claim or heartbeat has run out; while Redis cannot answer nothing is changed.

    An orphaned show is first *reconnecting*, as when its publisher drops: its host
    may publish again through any node within ``publisher_grace`` (an edge holding
    its viewers takes it over). Only then is it ended. Returns the shows ended."""
    now = time.monotonic() if now is None else now
    orphaned = app[ORPHANED]
    async with app[DB].session() as session:
        live = await shows.live_show_ids(session)
    for show_id in set(orphaned) - set(live):
        del orphaned[show_id]
    ended = []
    for show_id in live:
        if app[HUB].is_live(show_id):
            orphaned.pop(show_id, None)
            continue
        claimed = await app[ORIGINS].is_claimed(show_id)
        if claimed or (claimed is None and app[ORIGINS].redis is not None):
            orphaned.pop(show_id, None)
            continue
        first_seen = show_id not in orphaned
        since = orphaned.setdefault(show_id, now)
        app[HUB].origin_lost(show_id)  # an edge here holds its viewers for the host
        if now - since <= app[SETTINGS].publisher_grace:
            if not first_seen:
                continue  # marked when first seen; the grace runs
            async with app[DB].transaction() as session:
                show = await shows.get_show(session, show_id)
                newly = show.status is ShowStatus.live
                await shows.mark_reconnecting(session, show_id)
            if newly:
                log.warning("show %s: its origin is gone; reconnecting", show_id)
                await app[EVENTS].to_show(show_id, "show_status", {"status": "reconnecting"})
            continue
        del orphaned[show_id]
        # What the dead node recorded up to its death is kept and still served.
        path = await _whole_recording(app, show_id, None, relay_finished=False)
        async with app[DB].transaction() as session:
            show = await shows.get_show(session, show_id)
            if show.status not in shows.ON_AIR:
                continue  # ended meanwhile
            await shows.mark_ended(session, show_id, datetime.now(timezone.utc), path)
        log.warning("show %s: its origin is gone, marked ended", show_id)
        await app[EVENTS].to_show(show_id, "show_status", {"status": "ended"})
        ended.append(show_id)
    return ended


async def _whole_recording(
    app: web.Application, show_id: int, last: str | None, *, relay_finished: bool = True
) -> str | None:
    """The show's recording: when it has one part, ``last`` (the part the relay just
    finished, None if it failed), or for a show whose node died (``relay_finished``
    False) that node's part if it is there; else every part that can be read, joined
    into one file at their times from the show's start (live/recording_parts.py)."""
    async with app[DB].session() as session:
        parts = await shows.recording_parts(session, show_id)
    if len(parts) <= 1:
        if not relay_finished and parts and _nonempty(Path(parts[0][0])):
            return parts[0][0]  # cut off by the node's death, but playable up to there
        return last
    first = Path(parts[0][0])
    joined = first.with_name(f"{first.stem}-whole{first.suffix}")
    path = await asyncio.to_thread(join_parts, [(Path(p), offset) for p, offset in parts], joined)
    log.info("show %s: %d recording parts joined into %s", show_id, len(parts), path)
    return str(path) if path is not None else last


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


async def follow_origins(app: web.Application) -> None:
    """Edge shows follow their origin: when its node dies the edge holds its viewers,
    and when the host publishes again through another node the edge pulls the show
    from there, under the same viewers."""
    hub, origins = app[HUB], app[ORIGINS]
    edges = hub.edge_shows()
    for show_id in set(origins.pulled_from) - set(edges):
        del origins.pulled_from[show_id]
    for show_id in edges:
        try:
            origin = await origins.origin(show_id)
        except aioredis.RedisError:
            return
        if origin is None:
            hub.origin_lost(show_id)
        elif origin != origins.node_url and (origin != origins.pulled_from.get(show_id) or hub.needs_origin(show_id)):

            async def send_offer(offer_sdp: str, origin: str = origin, show_id: int = show_id) -> str:
                return await origins.offer(origin, show_id, offer_sdp)

            try:
                await hub.repull(show_id, send_offer)
            except LiveError as exc:
                log.warning("show %s: could not pull it again from %s (%s)", show_id, origin, exc.code)
                continue
            origins.pulled_from[show_id] = origin


async def _follow_origins(app: web.Application) -> None:
    while True:
        await asyncio.sleep(FOLLOW_EVERY)
        try:
            await follow_origins(app)
        except Exception:
            log.exception("could not follow the edge shows' origins")


async def _end_orphaned_shows(app: web.Application, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)  # first after one interval: let a restarted origin come back
        try:
            await end_orphaned_shows(app)
        except Exception:  # a database hiccup must not stop the checks
            log.exception("could not check for orphaned shows")


def setup(app: web.Application) -> None:
    app.router.add_post("/whip/{show_id}", whip_publish)
    app.router.add_delete("/whip/{show_id}/{session_id}", whip_stop)
    app.router.add_patch("/whip/{show_id}/{session_id}", trickle_not_supported)
    app.router.add_post("/api/shows/{show_id}/end", end_show)
    app.router.add_post("/whep/{show_id}", whep_play)
    app.router.add_delete("/whep/{show_id}/{session_id}", whep_stop)
    app.router.add_put("/whep/{show_id}/{session_id}/quality", whep_quality)
    app.router.add_patch("/whep/{show_id}/{session_id}", trickle_not_supported)
    app.router.add_get("/recordings/{show_id}", recording)
    app.router.add_get("/api/ice-servers", ice_servers_json)
    app.cleanup_ctx.append(_hub)


async def _hub(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]

    async def on_event(event: ShowStarted | ShowEnded | ShowReconnecting | ShowResumed) -> None:
        # Runs on the hub's task: a failure here must not take the relay down.
        try:
            if isinstance(event, ShowStarted):
                # Claim before the database says live: a WHEP that reaches another node
                # as soon as the show looks live must find where to go, never a 409.
                await app[ORIGINS].claim(event.show_id)
                async with app[DB].transaction() as session:
                    await shows.mark_live(session, event.show_id, event.started_at, event.recording_path)
                status = "live"
            elif isinstance(event, ShowReconnecting):
                # The claim is kept: the show, its viewers and recording stay on this node.
                async with app[DB].transaction() as session:
                    await shows.mark_reconnecting(session, event.show_id)
                log.info("show %s: reconnecting until %s (%s)", event.show_id, event.deadline.isoformat(), event.reason)
                status = "reconnecting"
            elif isinstance(event, ShowResumed):
                if event.taken_over:  # from a dead origin: the show is held here now
                    await app[ORIGINS].claim(event.show_id)
                    app[ORIGINS].pulled_from.pop(event.show_id, None)
                async with app[DB].transaction() as session:
                    await shows.mark_resumed(session, event.show_id)
                    if event.taken_over and event.recording_path is not None:
                        await shows.add_recording_part(session, event.show_id, event.recording_path, event.at)
                status = "live"
            else:
                recording = await _whole_recording(app, event.show_id, event.recording_path)
                async with app[DB].transaction() as session:
                    await shows.mark_ended(session, event.show_id, event.ended_at, recording)
                await app[ORIGINS].release(event.show_id)
                if recording is None:
                    log.warning("show %s: ended without a recording", event.show_id)
                status = "ended"
            await app[EVENTS].to_show(event.show_id, "show_status", {"status": status})
        except Exception:
            log.exception("show %s: could not record %s", event.show_id, type(event).__name__)

    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    hub = LiveHub(
        ice_servers=[parse_ice_server(u) for u in settings.ice_servers],
        recordings_dir=settings.recordings_dir.resolve(),
        on_event=on_event,
        public_ip=settings.public_ip or None,
        udp_ports=parse_port_range(settings.udp_ports) if settings.udp_ports else None,
        session_prefix=f"{settings.node_name}.",  # nginx routes DELETE/PATCH on it
        edge_linger=settings.edge_linger,
        publisher_grace=settings.publisher_grace,
        viewer_caps=ViewerCaps(
            per_client=settings.whep_per_address or None,
            per_show=settings.whep_per_show or None,
            per_node=settings.whep_per_node or None,
        ),
        viewer_connect_timeout=settings.viewer_connect_timeout,
    )
    app[HUB] = hub
    app[ORIGINS] = ShowOrigins(app[REDIS], settings.node_url, settings.secret)
    app[ORPHANED] = {}
    app[ORIGINS].start()
    register_stats("livemall_relay", hub.stats)
    tasks = [asyncio.create_task(_end_orphaned_shows(app, settings.orphan_check_interval))]
    if app[ORIGINS].redis is not None and settings.edge_pull:
        tasks.append(asyncio.create_task(_follow_origins(app)))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await hub.close()
    await app[ORIGINS].close()


__all__ = ["HUB", "parse_ice_server", "setup"]
