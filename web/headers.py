"""Security headers on every response: pages, JSON, static files, errors (issue 14, item 21).

- `X-Content-Type-Options: nosniff` everywhere, so a JSON body or an uploaded-looking
  static file is never run as script or style.
- A Content-Security-Policy everywhere. Pages get `page_policy`; anything else gets
  `default-src 'none'; frame-ancestors 'none'` (JSON and files need nothing), so a
  response opened directly in a tab can load and run nothing either.
- `connect-src` names this node's own origin (`public_url` when set, else the
  request's), http(s) and ws(s), never any `ws:`/`wss:` host: a script injected into a
  page could otherwise send what it reads to any WebSocket server.
- `Strict-Transport-Security` when `public_url` is https (the node is then only ever
  reached over TLS, at nginx: deploy/nginx).
- `Referrer-Policy: same-origin`.

A response that set a header itself keeps it (pages set their own policy).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from aiohttp import web

from web.appkeys import SETTINGS

HSTS = "max-age=31536000; includeSubDomains"
NON_PAGE_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# A Host header is reflected only if it looks like one (no ';', spaces or quotes to
# splice a directive into the policy).
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def own_origins(request: web.Request) -> str:
    """This node's origin for `connect-src`: http(s) for fetch, ws(s) for Socket.IO."""
    public_url = request.app[SETTINGS].public_url
    if public_url:
        parts = urlsplit(public_url)
        secure, host = parts.scheme == "https", parts.netloc
    else:
        secure, host = request.secure, request.host
    if not host or not _HOST.match(host):
        return "'self'"
    return f"'self' {'https' if secure else 'http'}://{host} {'wss' if secure else 'ws'}://{host}"


def page_policy(request: web.Request) -> str:
    """Scripts, styles and media only from this origin; the page data is JSON in a
    non-executed <script type="application/json">, so no inline script runs."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
        f"media-src 'self' blob:; connect-src {own_origins(request)}; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: runs for every response, including static files and the
    errors aiohttp makes itself (middlewares do not see a static file's headers)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if "Content-Security-Policy" not in headers:
        content_type = headers.get("Content-Type", "")
        headers["Content-Security-Policy"] = (
            page_policy(request) if content_type.startswith("text/html") else NON_PAGE_POLICY
        )
    if request.app[SETTINGS].public_url.lower().startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(add_security_headers)
