"""Routes: what only an admin changes from the admin page — users' roles.

(Shows and segments are scheduled through `POST /api/shows` and
`POST /api/shows/{id}/segments`; orders move through `/api/orders/{id}/…`.)
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from orders import accounts
from orders.errors import Invalid, NotFound
from orders.models import Role
from web.appkeys import DB
from web.auth import require_user
from web.errors import json_response
from web.validation import Body, int_param, parse_body

routes = web.RouteTableDef()


class RoleIn(Body):
    role: Literal["admin", "host", "member", "buyer"]


@routes.patch("/api/admin/users/{user_id}")
async def change_role(request: web.Request) -> web.Response:
    """Make a user a host, member, buyer or admin. An admin cannot change their own role:
    the last admin demoting themselves would leave nobody to undo it."""
    admin = await require_user(request, Role.admin)
    user_id = int_param(request, "user_id")
    body = await parse_body(request, RoleIn)
    if user_id == admin.id:
        raise Invalid("you cannot change your own role", field="role")
    async with request.app[DB].transaction() as session:
        user = await accounts.get_user(session, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        user.role = Role(body.role)
        result = accounts.user_private(user)
    return json_response(result)
