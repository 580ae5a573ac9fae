"""The aiohttp application factory: wires settings, database, Redis, routes and the other packages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from sqlalchemy import text

from orders.db import Database
from orders.events import NoEvents
from web import aiohttp_hooks, api_accounts, api_catalog, api_shows, headers, ratelimit
from web.appkeys import DB, EVENTS, REDIS, SETTINGS, TOKENS, VIEWER_COUNT
from web.auth import TokenCodec
from web.body_timeout import body_timeout_middleware
from web.cors import cors_middleware
from web.drain import DRAIN, DrainState, drain_middleware
from web.errors import error_middleware, json_error, json_response
from web.logs import request_id_middleware
from web.metrics import metrics_handler, metrics_middleware
from web.origin import origin_middleware
from web.ratelimit import rate_limit_middleware
from web.settings import Settings

log = logging.getLogger(__name__)

# Seconds a Redis command may take before it fails (redis-py 8's default is 5 s, older
# releases waited forever). Blocking reads must ask for less: see rooms.bus.RedisBus.BLOCK_MS.
REDIS_SOCKET_TIMEOUT = 5.0


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database and Redis answer, and the node is not draining."""
    if request.app[DRAIN].draining:
        return json_error(503, "draining", "this node is shutting down")
    checks: dict[str, str] = {}
    try:
        async with request.app[DB].session() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = type(exc).__name__
    client = request.app[REDIS]
    if client is not None:
        try:
            await client.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = type(exc).__name__
    if any(v != "ok" for v in checks.values()):
        return json_error(503, "not_ready", "a backing service is unreachable", checks=checks)
    return json_response({"ok": True, "checks": checks})


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        # Outermost first: every response gets a request id and a latency sample,
        # draining refuses new sessions before any work, errors become JSON last.
        middlewares=[
            request_id_middleware, metrics_middleware, cors_middleware, drain_middleware,
            origin_middleware, rate_limit_middleware, error_middleware,
            body_timeout_middleware(settings.http_body_timeout),  # inside: 413 becomes JSON
        ],
        client_max_size=settings.max_request_bytes,
        # The header-read timeout: a connection must send a whole request head within
        # http_header_timeout of connecting or of its last response (web/aiohttp_hooks.py).
        handler_args=aiohttp_hooks.handler_args(settings),
    )
    app[SETTINGS] = settings
    app[TOKENS] = TokenCodec(settings.secret, settings.token_ttl)
    app[EVENTS] = NoEvents()
    app[VIEWER_COUNT] = lambda show_id: 0
    app[DRAIN] = DrainState()
    headers.setup(app)  # nosniff, CSP, HSTS on every response (web/headers.py)
    ratelimit.setup(app)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    api_accounts.setup(app)  # ACCOUNTS: routes, password-reset e-mail
    from web import notifier; notifier.setup(app)  # MAIL: the e-mail queue's worker (after the database)
    for module in (api_catalog, api_shows):
        app.router.add_routes(module.routes)
    # Each capability adds its routes, resources and event sinks here (one line each).
    from web import api_orders; api_orders.setup(app)  # ORDERS
    from web import api_reports; api_reports.setup(app)  # REPORTS: figures, funnels, CSV exports
    from web import api_checkout; api_checkout.setup(app)  # CHECKOUT: addresses, ship-to, shipping tables
    from web import api_promotions; api_promotions.setup(app)  # COUPONS AND MILEAGE: vouchers, points at checkout
    from rooms import server; server.setup(app)  # ROOMS
    from web import media; media.setup(app)  # MEDIA
    from web import api_admin; app.router.add_routes(api_admin.routes)  # ADMIN
    from web import api_images; api_images.setup(app)  # PRODUCT IMAGES: uploads, gallery order, /media files
    from web import api_rates; api_rates.setup(app)  # EXCHANGE RATES: kept by the admin, read by the pages
    from web import pages; pages.setup(app)  # PAGES
    from web import pages_buyer; pages_buyer.setup(app)  # MY ORDERS, MY QUOTES
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].database)
    app[DB] = db
    yield
    await db.close()


def redis_client(url: str) -> aioredis.Redis:
    """The process's Redis client: bytes in and out, every command bounded in time."""
    return aioredis.from_url(url, decode_responses=False, socket_timeout=REDIS_SOCKET_TIMEOUT)


async def _redis(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis
    client = redis_client(url) if url else None
    app[REDIS] = client
    yield
    if client is not None:
        await client.aclose()
