"""Graceful drain: on SIGTERM a node stops taking new publishers, viewers and sockets
(503 with Retry-After, and /readyz turns 503 so the balancer moves on), asks its
Socket.IO clients to reconnect elsewhere, then closes its peer connections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from web.errors import json_error

log = logging.getLogger(__name__)


@dataclass
class DrainState:
    draining: bool = False
    # Run in order when draining starts, e.g. the rooms disconnect their sockets.
    hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


DRAIN = web.AppKey("drain", DrainState)
RETRY_AFTER = "5"


def _is_new_session(request: web.Request) -> bool:
    if request.method == "POST" and request.path.startswith(("/whip/", "/whep/")):
        return True
    # A Socket.IO handshake has no `sid` yet; established sockets may finish.
    return request.path.startswith("/socket.io") and "sid" not in request.query


@web.middleware
async def drain_middleware(request: web.Request, handler) -> web.StreamResponse:
    if request.app[DRAIN].draining and _is_new_session(request):
        response = json_error(503, "draining", "this node is shutting down; retry on another")
        response.headers["Retry-After"] = RETRY_AFTER
        return response
    return await handler(request)


async def drain(app: web.Application, settle_seconds: float) -> None:
    """Refuse new sessions, run the hooks, then give the balancer time to notice;
    all of it within `settle_seconds`."""
    state = app[DRAIN]
    if state.draining:
        return
    state.draining = True
    log.info("draining: refusing new sessions")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_seconds
    for hook in state.hooks:
        try:
            await asyncio.wait_for(hook(), timeout=max(0.1, deadline - loop.time()) if settle_seconds else None)
        except Exception:
            log.exception("drain hook failed")
    await asyncio.sleep(max(0.0, deadline - loop.time()))
