"""CORS for WHIP/WHEP and their resources, only for configured origins, so a WHEP
player hosted elsewhere can watch. No origin configured: no CORS headers at all."""

from __future__ import annotations

from aiohttp import web

from web.appkeys import SETTINGS

EXPOSED = "Location, Link, ETag, Accept-Patch, Retry-After"
ALLOWED_HEADERS = "Authorization, Content-Type, If-Match"
ALLOWED_METHODS = "POST, DELETE, PATCH, OPTIONS"


def _media_path(request: web.Request) -> bool:
    return request.path.startswith(("/whip/", "/whep/"))


@web.middleware
async def cors_middleware(request: web.Request, handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    allowed = origin is not None and _media_path(request) and origin in request.app[SETTINGS].cors_origins
    if request.method == "OPTIONS" and _media_path(request):
        response: web.StreamResponse = web.Response(status=204)
        if allowed:
            response.headers.update(
                {
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": "600",
                }
            )
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if allowed:
                _allow(exc, origin)
            raise
    if allowed:
        _allow(response, origin)
    return response


def _allow(response: web.StreamResponse, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = EXPOSED
    response.headers["Vary"] = "Origin"
