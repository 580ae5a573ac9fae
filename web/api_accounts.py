"""Routes: register, sign in and out, who am I, change or reset a password.

Passwords are read exactly as sent (no trimming: the body model strips other strings).
Sign-in is throttled per account as well as per address (web/ratelimit.py). A reset
request answers the same 202 whether or not the account exists, and the e-mail is only
queued (orders/notifications.py; web/notifier.py sends it), so neither reply nor timing
tells.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from aiohttp import web

from web.errors import json_response
from pydantic import StringConstraints

from orders import accounts, notifications, sessions
from orders.errors import Unauthorized
from orders.models import Role, utcnow
from orders.passwords import ResetTokens
from web.appkeys import DB, SETTINGS, TOKENS
from web.auth import COOKIE, is_https, request_session_id, require_user, verified_user_id
from web.notifier import base_url
from web.pages import LANG_COOKIE, choose_locale
from web.ratelimit import LIMITS, too_many
from web.validation import Body, parse_body

routes = web.RouteTableDef()

Email = Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
# Never altered: "  abcdefgh  " is its own password (issue 14, item 15).
Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=8, max_length=128)]


class Register(Body):
    email: Email
    password: Password
    name: Name
    country: Country
    role: Literal["buyer", "member"] = "buyer"
    city: Annotated[str, StringConstraints(max_length=100)] | None = None


class Login(Body):
    email: Annotated[str, StringConstraints(max_length=254)]
    password: Annotated[str, StringConstraints(strip_whitespace=False, max_length=128)]


class PasswordChange(Body):
    current_password: Annotated[str, StringConstraints(strip_whitespace=False, max_length=128)]
    new_password: Password


class ResetRequest(Body):
    email: Annotated[str, StringConstraints(max_length=254)]


class ResetConfirm(Body):
    token: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    new_password: Password


@routes.post("/api/auth/register")
async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, Register)
    async with request.app[DB].transaction() as session:
        user = await accounts.register(
            session,
            email=body.email,
            password=body.password,
            name=body.name,
            role=Role(body.role),
            country=body.country,
            city=body.city,
        )
        if request.cookies.get(LANG_COOKIE) or request.headers.get("Accept-Language"):
            # The language of the page that registered: the account's e-mails use it.
            await notifications.set_language(session, user.id, choose_locale(request), utcnow())
    return json_response({"user": accounts.user_private(user)}, status=201)


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, Login)
    limits = request.app.get(LIMITS)
    account = accounts.normalise_email(body.email)
    if limits is not None and (wait := await limits.sign_in_wait(account)) is not None:
        return too_many("login_account", wait, "too many failed sign-ins for this account")
    try:
        async with request.app[DB].session() as session:
            user = await accounts.authenticate(session, body.email, body.password)
    except Unauthorized:
        if limits is not None:
            await limits.sign_in_failed(account)
        raise
    async with request.app[DB].transaction() as session:
        opened = await sessions.open_session(session, user.id, utcnow(),
                                             timedelta(seconds=request.app[SETTINGS].token_ttl))
    token = request.app[TOKENS].issue(user.id, session_id=opened.id)
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
    """End this token's session on every node (a bad or missing token: only the cookie goes)."""
    try:
        user_id, session_id = verified_user_id(request), request_session_id(request)
    except Unauthorized:
        user_id = session_id = None
    if user_id is not None and session_id is not None:
        async with request.app[DB].transaction() as session:
            await sessions.revoke(session, session_id, utcnow())
        request.app[TOKENS].forget(user_id, session_id)
    response = json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


@routes.post("/api/auth/logout-all")
async def logout_everywhere(request: web.Request) -> web.Response:
    """Sign out everywhere: every session of the account ends, this one included."""
    user = await require_user(request)
    async with request.app[DB].transaction() as session:
        ended = await sessions.revoke_all(session, user.id, utcnow())
    request.app[TOKENS].forget(user.id)
    response = json_response({"ok": True, "revoked": ended})
    response.del_cookie(COOKIE, path="/")
    return response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_response({"user": accounts.user_private(user)})


@routes.post("/api/auth/password")
async def change_password(request: web.Request) -> web.Response:
    """A signed-in user's new password; the current one is required. Every session of the
    account ends, this one included (whoever took the old password or a token is out),
    so the client signs in again with the new password."""
    user = await require_user(request)
    body = await parse_body(request, PasswordChange)
    async with request.app[DB].transaction() as session:
        await accounts.change_password(session, user.id, body.current_password, body.new_password)
        await sessions.revoke_all(session, user.id, utcnow())
    request.app[TOKENS].forget(user.id)
    response = json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


RESET_SENT = "if an account with this e-mail exists, a link to reset its password is on its way"


@routes.post("/api/auth/password-reset")
async def request_password_reset(request: web.Request) -> web.Response:
    """E-mail a reset link; the reply is the same whether or not the account exists."""
    body = await parse_body(request, ResetRequest)
    async with request.app[DB].session() as session:
        user = await accounts.find_by_email(session, body.email)
    limits = request.app.get(LIMITS)
    if user is not None and (limits is None or await limits.may_send_reset_mail(user.email)):
        token = request.app[RESET_TOKENS].issue(user.id, user.password_hash)
        link = f"{base_url(request.app[SETTINGS])}/reset-password#token={token}"
        async with request.app[DB].transaction() as session:
            # In the language of the page that asked (web/mail_texts.py).
            await notifications.password_reset(session, user.id, link, request.app[SETTINGS].password_reset_ttl,
                                               choose_locale(request), utcnow())
    return json_response({"ok": True, "message": RESET_SENT}, status=202)


@routes.post("/api/auth/password-reset/confirm")
async def confirm_password_reset(request: web.Request) -> web.Response:
    """Set a new password with the link's token; the token works once. Every session of
    the account ends (whoever knew the old password is signed out)."""
    body = await parse_body(request, ResetConfirm)
    async with request.app[DB].transaction() as session:
        user = await accounts.reset_password(session, request.app[RESET_TOKENS], body.token, body.new_password)
        await sessions.revoke_all(session, user.id, utcnow())
    request.app[TOKENS].forget(user.id)
    if (limits := request.app.get(LIMITS)) is not None:
        await limits.sign_in_reset(user.email)
    return json_response({"ok": True})


RESET_TOKENS = web.AppKey("reset_tokens", ResetTokens)


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[RESET_TOKENS] = ResetTokens(settings.secret, settings.password_reset_ttl)
    app.router.add_routes(routes)
