"""Typed keys for the objects the app shares between handlers (aiohttp >= 3.9 AppKey)."""

from __future__ import annotations

from aiohttp import web

from orders.db import Database
from web.auth import TokenCodec
from web.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
TOKENS = web.AppKey("tokens", TokenCodec)
