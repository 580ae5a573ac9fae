"""Per-client HTTP rate limits: every write, sign-in and WHIP/WHEP request is bounded.

Built on the `limits` library (moving window, in-memory storage): a maintained
implementation of the window arithmetic rather than a hand-written one. Limits are per
node; behind nginx a client reaching both nodes gets each node's allowance, which still
bounds it (docs/operations.md). Chat has its own limits in rooms/moderation.py, and
page and static GETs are left to nginx's `limit_req`.

Who is "a client": the signed-in user for writes that need one (a whole office of
buyers behind one NAT address must not share one allowance in a flash sale), otherwise
the client's address. The address is the peer's, or, when the peer is a trusted proxy
(settings.trusted_proxies: addresses or networks, loopback by default), the last address in X-Forwarded-For
that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from orders.errors import DomainError
from web.appkeys import SETTINGS
from web.auth import verified_user_id
from web.errors import json_error
from web.media_origin import was_forwarded

RATE_LIMITED = Counter("livemall_http_rate_limited", "Requests refused by a rate limit", ["rule"])
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    item: RateLimitItem
    per_user: bool  # key by the signed-in user when there is one, else by address


class RateLimits:
    """Which rule a request falls under, and whether its client has allowance left."""

    def __init__(self, *, auth: str, media: str, write: str, trusted_proxies: tuple[str, ...]) -> None:
        self.auth = Rule("auth", parse(auth), per_user=False)
        self.media = Rule("media", parse(media), per_user=False)
        self.write = Rule("write", parse(write), per_user=True)
        self.trusted = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def rule_for(self, request: web.Request) -> Rule | None:
        path = request.path
        if request.method not in WRITES:
            return None
        if path.startswith("/api/auth/"):
            return self.auth
        if path.startswith(("/whip/", "/whep/")):
            # Another node forwarding (or an edge pulling) was limited where the client
            # came in; counting it again would make the node's address one client.
            if was_forwarded(request, request.app[SETTINGS].secret):
                return None
            return self.media
        if path.startswith("/api/payments/") and path.endswith("/webhook"):
            return None  # the provider's calls are signed and replay-safe, not a client's
        if path.startswith("/api/"):
            return self.write
        return None

    def is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def client_address(self, request: web.Request) -> str:
        peer = request.remote or "unknown"
        if not self.is_trusted(peer):
            return peer
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop
        return peer

    def client_key(self, request: web.Request, rule: Rule) -> str:
        if rule.per_user:
            user_id = _signed_in_user_id(request)
            if user_id is not None:
                return f"user:{user_id}"
        return f"addr:{self.client_address(request)}"

    async def retry_after(self, rule: Rule, key: str) -> float | None:
        """None when the request may go ahead (and is counted), else seconds to wait."""
        if await self.limiter.hit(rule.item, rule.name, key):
            return None
        stats = await self.limiter.get_window_stats(rule.item, rule.name, key)
        return max(1.0, stats.reset_time - time.time())


def _signed_in_user_id(request: web.Request) -> int | None:
    """The user a valid token names, without touching the database. A bad token counts
    as anonymous here (the handler refuses it): random tokens must not buy fresh
    allowances, so only a verifiable one keys by user."""
    try:
        return verified_user_id(request)
    except DomainError:
        return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LIMITS = web.AppKey("rate_limits", RateLimits)


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limits = request.app.get(LIMITS)
    rule = limits.rule_for(request) if limits is not None else None
    if rule is None:
        return await handler(request)
    wait = await limits.retry_after(rule, limits.client_key(request, rule))
    if wait is None:
        return await handler(request)
    RATE_LIMITED.labels(rule.name).inc()
    seconds = math.ceil(wait)
    response = json_error(429, "rate_limited", f"too many requests: try again in {seconds} s", retry_after=seconds)
    response.headers["Retry-After"] = str(seconds)
    return response


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    if settings.rate_limits:
        app[LIMITS] = RateLimits(
            auth=settings.rate_limit_auth,
            media=settings.rate_limit_media,
            write=settings.rate_limit_write,
            trusted_proxies=settings.trusted_proxies,
        )
