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


def invite_url(request: web.Request, code: str) -> str:
    base = request.app[SETTINGS].public_url.rstrip("/") or str(request.url.origin())
    return f"{base}/coview/{code}"


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
