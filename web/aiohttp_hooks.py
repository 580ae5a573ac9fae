"""Every reach into aiohttp's server internals, in one place (as live/aiortc_hooks.py
does for aiortc), each saying what it relies on. Checked against aiohttp 3.14;
tests/security/test_flood_http.py trips if a release changes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from aiohttp import web

from web import client_address
from web.settings import Settings

log = logging.getLogger(__name__)


class ConnectionCap:
    """At most `total` TCP connections held by the node, and `per_address` from one
    address (an IPv6 /64), counting only peers that are not trusted proxies (behind
    nginx every connection comes from nginx, which applies `limit_conn` itself).

    A connection over a cap is closed as it is accepted, before a byte is read: 10,000
    half-sent requests from one client exhausted the node's file descriptors (issue 14,
    item 4). The header-read timeout (web/app.py) frees the ones under the cap.

    Relies on: ``web.Server.connection_made(handler, transport)`` and
    ``connection_lost(handler, exc)`` being called by every ``RequestHandler`` through
    its ``_manager`` (``RequestHandler.connection_made``/``connection_lost``), so
    instance attributes of the same names replace them; ``Server._connections``.
    """

    def __init__(self, server: web.Server, total: int, per_address: int, trusted_proxies: tuple[str, ...]) -> None:
        self.total = total
        self.per_address = per_address
        self.refused = 0
        self._trusted = trusted_proxies
        self._server = server
        self._by_address: Counter[str] = Counter()
        self._address_of: dict[Any, str] = {}
        self._made = server.connection_made
        self._lost = server.connection_lost
        server.connection_made = self._connection_made  # type: ignore[method-assign]
        server.connection_lost = self._connection_lost  # type: ignore[method-assign]

    def _connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        peer = transport.get_extra_info("peername")
        address = client_address.address_key(str(peer[0])) if peer else "unknown"
        over = len(self._server._connections) > self.total
        if not over and not client_address.is_trusted(str(peer[0]) if peer else address, self._trusted):
            over = self._by_address[address] >= self.per_address
            if not over:
                self._by_address[address] += 1
                self._address_of[handler] = address
        if over:
            self.refused += 1
            transport.abort()  # connection_lost follows and undoes connection_made

    def _connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
        address = self._address_of.pop(handler, None)
        if address is not None:
            self._by_address[address] -= 1
            if self._by_address[address] <= 0:
                del self._by_address[address]
        self._lost(handler, exc)


def cap_connections(runner: web.AppRunner, settings: Settings) -> ConnectionCap:
    """Call after ``runner.setup()`` and before the sites start."""
    assert runner.server is not None, "runner.setup() first"
    return ConnectionCap(
        runner.server, settings.http_max_connections, settings.http_connections_per_address, settings.trusted_proxies
    )


def handler_args(settings: Settings) -> dict[str, Any]:
    """``RequestHandler`` arguments for ``web.Application(handler_args=...)``.

    Relies on: aiohttp 3.14's keep-alive timer starting at ``connection_made`` and
    again after each response, and closing the connection if no complete request head
    has been parsed by then (``RequestHandler._process_keepalive`` closes while the
    handler waits for a message; a partial head never makes one). So
    ``keepalive_timeout`` is also the header-read timeout: an idle partial request
    (it stayed open 400 s, issue 14, item 4) is closed after `http_header_timeout`.
    """
    return {"keepalive_timeout": settings.http_header_timeout}
