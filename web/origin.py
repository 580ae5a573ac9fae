"""Cross-site request forgery: a write authenticated by the session cookie must come
from one of our own pages.

The cookie is SameSite=Lax, which keeps it off cross-site POSTs but not off requests
from another origin of the same site: a form on another port of the same host cancelled
an order in Chromium, and scripted clients sending `Origin: https://evil.example` with
the cookie cancelled orders, accepted quotes and refunded (issue 14, item 13).

So a POST, PUT, PATCH or DELETE that carries the session cookie and no Authorization
header is refused (403 `foreign_origin`) when its `Origin` is not this service's own: the
origin the request itself was made to (scheme as the browser saw it, host and port from
`Host`) or the configured `public_url`. With no `Origin` at all (old browsers, same-origin
GETs turned POST by extensions, non-browser clients) it is refused only when the browser
says `Sec-Fetch-Site: cross-site` or `same-site`. Sign-in, registration and password-reset
forms are checked the same way with or without a cookie (a forged sign-in would put the
victim in the attacker's account).

Unaffected: requests with a bearer token (a page on another origin cannot read or send
it), Socket.IO (python-socketio checks its own origins), payment webhooks (no cookie),
and WHIP/WHEP calls from the configured `cors_origins`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from web.appkeys import SETTINGS
from web.auth import COOKIE, is_https
from web.errors import json_error

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def normalised(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL; None for "null" and anything unparsable."""
    try:
        parts = urlsplit(origin.strip())
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            return None
        return scheme, parts.hostname.lower(), parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # a bad port
        return None


def own_origins(request: web.Request) -> set[tuple[str, str, int]]:
    scheme = "https" if is_https(request) else "http"
    own = {normalised(f"{scheme}://{request.host}")}
    public_url = request.app[SETTINGS].public_url
    if public_url:
        own.add(normalised(public_url))
    own.discard(None)
    return own  # type: ignore[return-value]


def _checked(request: web.Request) -> bool:
    """Whether the request is a write this check applies to."""
    if request.method not in WRITES:
        return False
    path = request.path
    if path.startswith("/socket.io/") or (path.startswith("/api/payments/") and path.endswith("/webhook")):
        return False
    if "Authorization" in request.headers:
        return False  # a bearer token: not something a foreign page can make a browser send
    return COOKIE in request.cookies or path.startswith("/api/auth/")


def is_foreign(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site")
    if request.path.startswith(("/whip/", "/whep/")) and origin in request.app[SETTINGS].cors_origins:
        return False
    parsed = normalised(origin)
    return parsed is None or parsed not in own_origins(request)


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _checked(request) and is_foreign(request):
        return json_error(
            403, "foreign_origin", "this request came from another site's page; use this site's own pages"
        )
    return await handler(request)
