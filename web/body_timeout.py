"""A request body must arrive within `http_body_timeout` of its head.

The header-read timeout (web/aiohttp_hooks.py) frees a connection that never finishes
its request head; without this, a client that sends a head with `Content-Length:
100000` and then a byte a minute holds a handler (and its connection) for as long as
it likes, since aiohttp waits for a body without a deadline. The body is read here,
under the deadline and within `client_max_size`, so a handler's own `request.json()`
or `request.text()` later takes it from aiohttp's cache. A slow body gets `408
slow_body` and the connection is closed.

Not for Engine.IO (`/socket.io/`): its aiohttp driver reads the body stream itself, so
it must stay unread; polling bodies are bounded in size (rooms/engineio_hooks.py), and
behind nginx `client_body_timeout` bounds their pace (deploy/nginx). Nor for image
uploads (web/api_images.py), larger than `client_max_size`: that route streams its
multipart body itself, under its own size cap and `image_upload_timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from web.api_images import streams_its_body
from web.errors import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def body_timeout_middleware(timeout: float) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def read_body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists and not request.path.startswith("/socket.io/") and not streams_its_body(request):
            try:
                async with asyncio.timeout(timeout):
                    await request.read()
            except TimeoutError:
                response = json_error(408, "slow_body", f"the request body did not arrive within {timeout:g} s")
                response.force_close()
                # Sent now and the connection closed after it: returned unsent, aiohttp
                # would first "linger" up to 10 s reading the rest of the body.
                await response.prepare(request)
                await response.write_eof()
                request.protocol.force_close()
                return response
        return await handler(request)

    return read_body_in_time
