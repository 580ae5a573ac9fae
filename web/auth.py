"""Session tokens and the signed-in user of a request.

A token is `{"uid", "exp"}` signed with itsdangerous (HMAC-SHA256); it travels as
`Authorization: Bearer …` or in the `livemall_session` cookie (HttpOnly, SameSite=Lax,
so a cross-site form cannot post with it).
"""

from __future__ import annotations

import time
from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer

from orders.errors import Forbidden, Unauthorized
from orders.models import Role, User

COOKIE = "livemall_session"
_USER = web.RequestKey("livemall.user", object)
_USER_ID = web.RequestKey("livemall.user_id", int)


class TokenCodec:
    def __init__(self, secret: str, ttl: int) -> None:
        self._serializer = URLSafeSerializer(secret, salt="livemall.session")
        self.ttl = ttl

    def issue(self, user_id: int, now: float | None = None) -> str:
        now = time.time() if now is None else now
        return self._serializer.dumps({"uid": user_id, "exp": int(now + self.ttl)})

    def verify(self, token: str, now: float | None = None) -> int:
        """The user id in a valid token; Unauthorized for a forged, malformed or expired one."""
        now = time.time() if now is None else now
        try:
            payload = self._serializer.loads(token)
        except BadSignature as exc:
            raise Unauthorized("invalid token") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("uid"), int):
            raise Unauthorized("invalid token")
        if not isinstance(payload.get("exp"), int) or payload["exp"] < now:
            raise Unauthorized("token expired")
        return payload["uid"]


def is_https(request: web.Request) -> bool:
    """Whether the browser reached us over HTTPS, so cookies get `Secure`. Behind nginx
    (TLS ends there) the node itself speaks plain HTTP: trust the proxy's
    X-Forwarded-Proto, or a configured https public URL. A client forging the header
    only makes its own cookie stricter."""
    from web.appkeys import SETTINGS

    if request.secure or request.app[SETTINGS].public_url.lower().startswith("https://"):
        return True
    return request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower() == "https"


def request_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        return token.strip()
    return request.cookies.get(COOKIE) or None


def verified_user_id(request: web.Request) -> int | None:
    """The user id the request's token names (verified once per request, then kept:
    the rate limiter and the handler both ask); None when anonymous, Unauthorized for
    a bad or expired token."""
    if _USER_ID in request:
        return request[_USER_ID]
    from web.appkeys import TOKENS

    token = request_token(request)
    if token is None:
        return None
    user_id = request.app[TOKENS].verify(token)
    request[_USER_ID] = user_id
    return user_id


async def optional_user(request: web.Request) -> User | None:
    """The signed-in user, None when anonymous; Unauthorized for a bad or expired token."""
    if _USER in request:
        return request[_USER]
    from web.appkeys import DB

    user = None
    user_id = verified_user_id(request)
    if user_id is not None:
        async with request.app[DB].session() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise Unauthorized("unknown user")
    request[_USER] = user
    return user


async def require_user(request: web.Request, *roles: Role) -> User:
    """The signed-in user, who must hold one of `roles` when any are given."""
    user = await optional_user(request)
    if user is None:
        raise Unauthorized("sign in first")
    if roles and user.role not in roles:
        raise Forbidden(f"needs role {' or '.join(r.value for r in roles)}")
    return user
