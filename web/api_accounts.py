"""Routes: register, sign in and out, who am I."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web

from web.errors import json_response
from pydantic import Field, StringConstraints

from orders import accounts
from orders.models import Role
from web.appkeys import DB, SETTINGS, TOKENS
from web.auth import COOKIE, is_https, require_user
from web.validation import Body, parse_body

routes = web.RouteTableDef()

Email = Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]


class Register(Body):
    email: Email
    password: Annotated[str, StringConstraints(min_length=8, max_length=128)]
    name: Name
    country: Country
    role: Literal["buyer", "member"] = "buyer"
    city: Annotated[str, StringConstraints(max_length=100)] | None = None


class Login(Body):
    email: Annotated[str, StringConstraints(max_length=254)]
    password: Annotated[str, Field(max_length=128)]


@routes.post("/api/auth/register")
async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, Register)
    async with request.app[DB].transaction() as session:
        user = await accounts.create_user(
            session,
            email=body.email,
            password=body.password,
            name=body.name,
            role=Role(body.role),
            country=body.country,
            city=body.city,
        )
    return json_response({"user": accounts.user_private(user)}, status=201)


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, Login)
    async with request.app[DB].session() as session:
        user = await accounts.authenticate(session, body.email, body.password)
    token = request.app[TOKENS].issue(user.id)
    response = json_response({"token": token, "user": accounts.user_private(user)})
    response.set_cookie(
        COOKIE,
        token,
        max_age=request.app[SETTINGS].token_ttl,
        httponly=True,
        samesite="Lax",
        secure=is_https(request),
        path="/",
    )
    return response


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    response = json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_response({"user": accounts.user_private(user)})
