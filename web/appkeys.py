"""Typed keys for the objects the app shares between handlers (aiohttp >= 3.9 AppKey)."""

from __future__ import annotations

from typing import Callable

import redis.asyncio as aioredis
from aiohttp import web

from orders.db import Database
from orders.events import ShowEvents
from web.auth import TokenCodec
from web.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
TOKENS = web.AppKey("tokens", TokenCodec)
# None when running as one process without Redis.
REDIS = web.AppKey("redis", aioredis.Redis | None)
# Where domain events go; rooms/ installs its Socket.IO implementation.
EVENTS = web.AppKey("events", ShowEvents)
# Live viewer count of a show (installed by rooms/; 0 before).
VIEWER_COUNT = web.AppKey("viewer_count", Callable[[int], int])
