"""Per-client HTTP rate limits: every write, sign-in and WHIP/WHEP request is bounded.

Built on the `limits` library (moving window, in-memory storage): a maintained
implementation of the window arithmetic rather than a hand-written one. Limits are per
node; behind nginx a client reaching both nodes gets each node's allowance, which still
bounds it (docs/operations.md). Chat has its own limits in rooms/moderation.py, and
page and static GETs are left to nginx's `limit_req`.

Who is "a client": the signed-in user for writes that need one (a whole office of
buyers behind one NAT address must not share one allowance in a flash sale), otherwise
the client's address as web/client_address.py finds it (X-Forwarded-For only from
settings.trusted_proxies, loopback by default) and counts it: an IPv6 client by its /64.

Sign-in is also limited per account: failed attempts on one account from all addresses
together (`rate_limit_login_account`), so rotating addresses (200 guesses from 11
addresses got in, issue 14, item 12) buys no more guesses. Past that budget even the
right password is refused until the window moves on or a password reset clears it.
Password-reset e-mails are limited per account too (`password_reset_mails`), so the
reset form cannot flood someone's inbox. With Redis configured these per-account counts
are kept there, shared by every node (a guesser spreading over nodes gets one budget,
not one per node); should Redis fail, a node counts on its own meanwhile rather than
refuse every sign-in.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import Counter

from orders.errors import DomainError
from web.appkeys import REDIS, SETTINGS
from web.auth import verified_user_id
from web.client_address import client_group
from web.errors import json_error
from web.media_origin import was_forwarded

log = logging.getLogger(__name__)
RATE_LIMITED = Counter("livemall_http_rate_limited", "Requests refused by a rate limit", ["rule"])
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    item: RateLimitItem
    per_user: bool  # key by the signed-in user when there is one, else by address


class RateLimits:
    """Which rule a request falls under, and whether its client has allowance left."""

    def __init__(
        self, *, auth: str, media: str, write: str, login_account: str = "10/15 minutes", reset_mails: str = "3/hour"
    ) -> None:
        self.auth = Rule("auth", parse(auth), per_user=False)
        self.media = Rule("media", parse(media), per_user=False)
        self.write = Rule("write", parse(write), per_user=True)
        self.login_account = Rule("login_account", parse(login_account), per_user=False)
        self.reset_mails = Rule("reset_mails", parse(reset_mails), per_user=False)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.accounts = self.limiter  # per-account counts; shared through Redis when there is one

    def share_accounts(self, storage: RedisStorage) -> None:
        self.accounts = MovingWindowRateLimiter(storage)

    async def _on_accounts(self, method: str, *args: object) -> object:
        try:
            return await getattr(self.accounts, method)(*args)
        except StorageError as exc:  # Redis down: count on this node rather than refuse
            log.warning("per-account limits on this node only: %s", type(exc.storage_error).__name__)
            return await getattr(self.limiter, method)(*args)

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

    def client_key(self, request: web.Request, rule: Rule) -> str:
        if rule.per_user:
            user_id = _signed_in_user_id(request)
            if user_id is not None:
                return f"user:{user_id}"
        return f"addr:{client_group(request)}"

    # --- per account (the handlers call these; `account` is the normalised e-mail) ---

    async def sign_in_wait(self, account: str) -> float | None:
        """None while the account may try to sign in, else seconds until it may again."""
        rule = self.login_account
        if await self._on_accounts("test", rule.item, rule.name, account):
            return None
        stats = await self._on_accounts("get_window_stats", rule.item, rule.name, account)
        return max(1.0, stats.reset_time - time.time())  # type: ignore[attr-defined]

    async def sign_in_failed(self, account: str) -> None:
        await self._on_accounts("hit", self.login_account.item, self.login_account.name, account)

    async def sign_in_reset(self, account: str) -> None:
        """Forget the account's failures (its password was just reset by its owner)."""
        await self._on_accounts("clear", self.login_account.item, self.login_account.name, account)

    async def may_send_reset_mail(self, account: str) -> bool:
        return bool(await self._on_accounts("hit", self.reset_mails.item, self.reset_mails.name, account))

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
    return too_many(rule.name, wait)


def too_many(rule_name: str, wait: float, what: str = "too many requests") -> web.Response:
    """429 with Retry-After and the JSON error every limit answers with."""
    RATE_LIMITED.labels(rule_name).inc()
    seconds = math.ceil(wait)
    response = json_error(429, "rate_limited", f"{what}: try again in {seconds} s", retry_after=seconds)
    response.headers["Retry-After"] = str(seconds)
    return response


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    if settings.rate_limits:
        app[LIMITS] = RateLimits(
            auth=settings.rate_limit_auth,
            media=settings.rate_limit_media,
            write=settings.rate_limit_write,
            login_account=settings.rate_limit_login_account,
            reset_mails=settings.password_reset_mails,
        )
        app.on_startup.append(_share_accounts)  # after the cleanup contexts: Redis is open


async def _share_accounts(app: web.Application) -> None:
    redis = app.get(REDIS)
    if redis is not None:
        # The app's own Redis pool (closed with it); the URI only names the implementation.
        storage = RedisStorage("async+redis://", implementation="redispy", key_prefix="livemall:limits",
                               wrap_exceptions=True, connection_pool=redis.connection_pool)
        app[LIMITS].share_accounts(storage)
