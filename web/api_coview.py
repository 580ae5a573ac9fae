"""Routes: co-view rooms. A member opens one on a show and shares the invite URL;
buyers join it over Socket.IO with the code (rooms/events.py)."""

from __future__ import annotations

from aiohttp import web

from orders.errors import Forbidden
from orders import brokers
from orders.models import Role, User, utcnow
from rooms import coview
from rooms.server import ROOMS, coview_key
from web.appkeys import DB, SETTINGS
from web.auth import require_user
from web.errors import json_response
from web.validation import Body, Id, parse_body

routes = web.RouteTableDef()


class CoviewIn(Body):
    show_id: Id


LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def invite_url(request: web.Request, code: str) -> str:
    """The invite link, on `public_url`, never on the request's Host header: a forged
    Host made links on evil.example (issue 14, item 19). Without a public_url the
    request's origin is used only for a host this node is configured to serve (its
    bind address, or loopback on one machine); anything else gets a relative link,
    which the page completes with the address the visitor's browser is on."""
    settings = request.app[SETTINGS]
    if settings.public_url:
        return f"{settings.public_url.rstrip('/')}/coview/{code}"
    host = (request.url.host or "").strip("[]").lower()
    if host in LOOPBACK or (host == settings.host.lower() and settings.host not in ("0.0.0.0", "::")):
        return f"{request.url.origin()}/coview/{code}"
    return f"/coview/{code}"


@routes.post("/api/coview")
async def create_coview(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, CoviewIn)
    settings = request.app[SETTINGS]
    async with request.app[DB].transaction() as session:
        room = await coview.create_room(
            session,
            show_id=body.show_id,
            owner=user,
            at=utcnow(),
            ttl=settings.coview_ttl,
            member_limit=settings.coview_member_limit,
        )
        result = await coview.room_public(session, room, invite_url(request, room.code))
    return json_response(result, status=201)


@routes.get("/api/coview/{code}")
async def describe_coview(request: web.Request) -> web.Response:
    await require_user(request)
    code = request.match_info["code"]
    async with request.app[DB].session() as session:
        room = await coview.find_room(session, code, utcnow())
        result = await coview.room_public(session, room, invite_url(request, room.code))
    result["members"] = request.app[ROOMS].presence.total(coview_key(room.id))
    return json_response(result)


@routes.get("/api/coview/{code}/orders")
async def coview_orders(request: web.Request) -> web.Response:
    """The room owner's credited orders (an admin may look too); other people get 403:
    who bought what from a member's room is the member's business."""
    user: User = await require_user(request)
    code = request.match_info["code"]
    async with request.app[DB].session() as session:
        room = await coview.find_room(session, code, utcnow())
        if user.id != room.owner_id and user.role is not Role.admin:
            raise Forbidden("only the room's owner sees its orders")
        orders = await brokers.credited_orders(session, room)
    return json_response({"code": room.code, "orders": orders})
