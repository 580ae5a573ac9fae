"""The aiohttp application factory: wires settings, database, Redis, routes and the other packages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from orders.db import Database
from orders.events import NoEvents
from web import api_accounts, api_catalog, api_shows
from web.appkeys import DB, EVENTS, REDIS, SETTINGS, TOKENS, VIEWER_COUNT
from web.auth import TokenCodec
from web.errors import error_middleware, json_response
from web.settings import Settings

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"ok": True})


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_request_bytes)
    app[SETTINGS] = settings
    app[TOKENS] = TokenCodec(settings.secret, settings.token_ttl)
    app[EVENTS] = NoEvents()
    app[VIEWER_COUNT] = lambda show_id: 0
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.router.add_get("/healthz", healthz)
    for module in (api_accounts, api_catalog, api_shows):
        app.router.add_routes(module.routes)
    # Each capability adds its routes, resources and event sinks here (one line each).
    # ORDERS: from web import api_orders; api_orders.setup(app)
    # ROOMS: from rooms import server; server.setup(app)
    # MEDIA: from web import media; media.setup(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].database)
    app[DB] = db
    yield
    await db.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis
    client = aioredis.from_url(url, decode_responses=False) if url else None
    app[REDIS] = client
    yield
    if client is not None:
        await client.aclose()
