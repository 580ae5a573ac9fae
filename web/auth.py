"""Session tokens and the signed-in user of a request.

A token is `{"uid", "sid", "exp"}` signed with itsdangerous (HMAC-SHA256); it travels as
`Authorization: Bearer …` or in the `livemall_session` cookie (HttpOnly, SameSite=Lax,
so a cross-site form cannot post with it). `sid` names a row of the shared `sessions`
table (orders/sessions.py): a token is refused once its session is revoked (logout,
"sign out everywhere") or expired, on every node within `SESSION_RECHECK` seconds.
"""

from __future__ import annotations

import hashlib
import time

from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer

from orders.errors import Forbidden, Unauthorized
from orders.models import Role, User, utcnow

COOKIE = "livemall_session"
_USER = web.RequestKey("livemall.user", object)
_USER_ID = web.RequestKey("livemall.user_id", int)
_SESSION_ID = web.RequestKey("livemall.session_id", str)

# Seconds a node believes a session it found live without asking the table again: a
# revocation on any node is refused everywhere within this (plus one query).
SESSION_RECHECK = 1.0
_CACHE_LIMIT = 100_000


class TokenCodec:
    def __init__(self, secret: str, ttl: int) -> None:
        # itsdangerous signs with HMAC-SHA1 unless told otherwise (issue 14, item 22).
        self._serializer = URLSafeSerializer(
            secret, salt="livemall.session", signer_kwargs={"digest_method": hashlib.sha256}
        )
        self.ttl = ttl
        # (session id, user id) -> when this node last found it live (monotonic seconds);
        # and sessions found ended, refused without another query.
        self._live: dict[tuple[str, int], float] = {}
        self._ended: set[tuple[str, int]] = set()

    def issue(self, user_id: int, now: float | None = None, *, session_id: str = "") -> str:
        """A token for an open session (orders/sessions.py); one without `session_id`
        is refused by `verify` (kept only for tests of the other checks)."""
        now = time.time() if now is None else now
        return self._serializer.dumps({"uid": user_id, "sid": session_id, "exp": int(now + self.ttl)})

    def claims(self, token: str, now: float | None = None) -> tuple[int, str]:
        """(user id, session id) of a well-signed, unexpired token that names a session;
        Unauthorized otherwise. Whether the session is still live is `session_live`'s."""
        now = time.time() if now is None else now
        try:
            payload = self._serializer.loads(token)
        except BadSignature as exc:
            raise Unauthorized("invalid token") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("uid"), int):
            raise Unauthorized("invalid token")
        if not isinstance(payload.get("exp"), int) or payload["exp"] < now:
            raise Unauthorized("token expired")
        sid = payload.get("sid")
        if not isinstance(sid, str) or not sid or len(sid) > 32:
            raise Unauthorized("this token names no session; sign in again")
        return payload["uid"], sid

    def verify(self, token: str, now: float | None = None) -> int:
        """The user id in a valid token; Unauthorized for a forged, malformed or expired one.
        Signature only: callers that authorise also ask `session_live`."""
        return self.claims(token, now)[0]

    def believed(self, user_id: int, session_id: str) -> bool | None:
        """What this node knows of a session without asking the table: True (found live
        less than `SESSION_RECHECK` ago), False (found ended), None (ask)."""
        key = (session_id, user_id)
        if key in self._ended:
            return False
        checked = self._live.get(key)
        if checked is not None and time.monotonic() - checked < SESSION_RECHECK:
            return True
        return None

    def found(self, user_id: int, session_id: str, live: bool) -> None:
        """What the table said of a session just now."""
        key = (session_id, user_id)
        if len(self._live) > _CACHE_LIMIT:
            self._live.clear()
        if len(self._ended) > _CACHE_LIMIT:
            self._ended.clear()
        if live:
            self._live[key] = time.monotonic()
        else:
            self._live.pop(key, None)
            self._ended.add(key)

    async def session_live(self, db, user_id: int, session_id: str) -> bool:
        """Whether the token's session is still open: asked of the shared table at most
        once a `SESSION_RECHECK` per session on this node; a session found ended stays
        refused here without asking again."""
        known = self.believed(user_id, session_id)
        if known is not None:
            return known
        from orders import sessions

        async with db.session() as session:
            live = await sessions.is_live(session, session_id, user_id, utcnow())
        self.found(user_id, session_id, live)
        return live

    def forget(self, user_id: int, session_id: str | None = None) -> None:
        """This node ended a session (or all of a user's): stop believing it at once."""
        for key in [k for k in self._live if k[1] == user_id and (session_id is None or k[0] == session_id)]:
            del self._live[key]
        if session_id is not None:
            self._ended.add((session_id, user_id))


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
    user_id, session_id = request.app[TOKENS].claims(token)
    request[_USER_ID] = user_id
    request[_SESSION_ID] = session_id
    return user_id


def request_session_id(request: web.Request) -> str | None:
    """The session id of the request's (verified) token; None when anonymous."""
    verified_user_id(request)
    return request.get(_SESSION_ID)


async def optional_user(request: web.Request) -> User | None:
    """The signed-in user, None when anonymous; Unauthorized for a bad or expired token."""
    if _USER in request:
        return request[_USER]
    from web.appkeys import DB, TOKENS

    user = None
    user_id = verified_user_id(request)
    if user_id is not None:
        tokens, session_id = request.app[TOKENS], request[_SESSION_ID]
        known = tokens.believed(user_id, session_id)
        if known is False:
            raise Unauthorized("this session has ended (signed out); sign in again")
        from orders import sessions

        async with request.app[DB].session() as session:
            if known:
                user = await session.get(User, user_id)
            else:  # the user and whether the session is live, in one query
                user, live = await sessions.user_if_live(session, session_id, user_id, utcnow())
                tokens.found(user_id, session_id, live)
                if not live:
                    raise Unauthorized("this session has ended (signed out); sign in again")
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
