"""The aiohttp application factory: wires settings, database, routes and the other packages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from orders.db import Database
from web import api_accounts, api_catalog, api_shows
from web.appkeys import DB, SETTINGS, TOKENS
from web.auth import TokenCodec
from web.errors import json_response, error_middleware
from web.settings import Settings

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"ok": True})


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_request_bytes)
    app[SETTINGS] = settings
    app[TOKENS] = TokenCodec(settings.secret, settings.token_ttl)
    app.cleanup_ctx.append(_database)
    app.router.add_get("/healthz", healthz)
    for module in (api_accounts, api_catalog, api_shows):
        app.router.add_routes(module.routes)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].database)
    app[DB] = db
    yield
    await db.close()
