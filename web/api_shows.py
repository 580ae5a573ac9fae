"""Routes: the show schedule, show detail and segments."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web

from web.errors import json_response
from pydantic import Field, StringConstraints

from orders import notifications, shows
from orders.catalog import get_product, product_public
from orders.models import Role, utcnow
from web.appkeys import DB, VIEWER_COUNT
from web.auth import require_user
from web.validation import Body, Id, Instant, int_param, parse_body

routes = web.RouteTableDef()

Title = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SegmentIn(Body):
    title: Title
    committee: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    product_ids: Annotated[list[Id], Field(max_length=shows.MAX_PRODUCTS_PER_SEGMENT)] = []

    def plan(self) -> shows.SegmentPlan:
        return shows.SegmentPlan(self.title, self.committee, list(self.product_ids))


class ShowIn(Body):
    title: Title
    scheduled_at: Instant
    exhibition_id: Id | None = None
    host_id: Id | None = None
    segments: Annotated[list[SegmentIn], Field(max_length=shows.MAX_SEGMENTS)] = []


@routes.get("/api/shows")
async def list_shows(request: web.Request) -> web.Response:
    async with request.app[DB].session() as session:
        rows = await shows.list_shows(session)
    return json_response([shows.show_public(s) for s in rows])


@routes.post("/api/shows")
async def create_show(request: web.Request) -> web.Response:
    user = await require_user(request, Role.host, Role.admin)
    body = await parse_body(request, ShowIn)
    async with request.app[DB].transaction() as session:
        show = await shows.create_show(
            session,
            creator=user,
            title=body.title,
            scheduled_at=body.scheduled_at,
            segments=[s.plan() for s in body.segments],
            exhibition_id=body.exhibition_id,
            host_id=body.host_id,
        )
        result = shows.show_public(show)
    return json_response(result, status=201)


@routes.get("/api/shows/{show_id}")
async def show_detail(request: web.Request) -> web.Response:
    show_id = int_param(request, "show_id")
    async with request.app[DB].session() as session:
        show = await shows.get_show(session, show_id)
        body = shows.show_public(show)
        pin = await get_product(session, show.pinned_product_id) if show.pinned_product_id else None
        body["pin"] = product_public(pin) if pin else None
    body["recording"] = f"/recordings/{show.id}" if show.recording_path and show.status.value == "ended" else None
    body["viewers"] = request.app[VIEWER_COUNT](show.id)
    return json_response(body)


@routes.post("/api/shows/{show_id}/segments")
async def add_segment(request: web.Request) -> web.Response:
    user = await require_user(request, Role.host, Role.admin)
    show_id = int_param(request, "show_id")
    body = await parse_body(request, SegmentIn)
    async with request.app[DB].transaction() as session:
        show = await shows.get_show(session, show_id)
        shows.require_host(user, show)
        segment = await shows.add_segment(session, show, body.plan())
        result = shows.segment_public(segment)
    return json_response(result, status=201)


# --- "Remind me" (issue 15, item 6): an e-mail when a scheduled show goes live ----------

@routes.post("/api/shows/{show_id}/remind")
async def remind(request: web.Request) -> web.Response:
    """Ask for one e-mail when the show goes live (orders/notifications.py). A show not
    scheduled (live, ended) → 409 show_not_scheduled; asking twice is asking once."""
    user = await require_user(request)
    show_id = int_param(request, "show_id")
    async with request.app[DB].transaction() as session:
        await notifications.remind(session, show_id, user.id, utcnow())
    return json_response({"show_id": show_id, "reminded": True})


@routes.delete("/api/shows/{show_id}/remind")
async def forget_reminder(request: web.Request) -> web.Response:
    user = await require_user(request)
    show_id = int_param(request, "show_id")
    async with request.app[DB].transaction() as session:
        await notifications.forget_reminder(session, show_id, user.id)
    return json_response({"show_id": show_id, "reminded": False})
