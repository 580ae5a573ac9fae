"""Abuse limits on what a signed-in viewer may post: mutes, slow mode and a per-user
rate limit. With Redis they hold across processes (one Lua script, one round trip per
message); without it they live in this process.

Hosts of the show and admins are exempt: the caller does not ask for them.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from typing import Protocol

import redis.asyncio as aioredis

from orders.errors import Invalid
from rooms.errors import Muted, RateLimited, SlowMode

MAX_MUTE = 7 * 24 * 3600  # seconds

# Verdicts of a check: 0 ok, 1 muted, 2 slow mode, 3 rate limited (+ ms to wait).
_OK, _MUTED, _SLOW, _RATE = 0, 1, 2, 3


def _refuse(verdict: int, wait_ms: float) -> None:
    retry_after = max(1, math.ceil(wait_ms / 1000))
    if verdict == _MUTED:
        raise Muted(f"you are muted for {retry_after} more seconds", retry_after=retry_after)
    if verdict == _SLOW:
        raise SlowMode(f"slow mode: wait {retry_after} seconds between messages", retry_after=retry_after)
    if verdict == _RATE:
        raise RateLimited(f"too many messages: wait {retry_after} seconds", retry_after=retry_after)


def check_mute_seconds(seconds: int) -> int:
    if not 1 <= seconds <= MAX_MUTE:
        raise Invalid(f"mute for 1 to {MAX_MUTE} seconds", field="seconds")
    return seconds


class Limits(Protocol):
    async def check_post(self, show_id: int, user_id: int, slow_mode: int) -> None:
        """Raise Muted, SlowMode or RateLimited, or count the post and return."""

    async def mute(self, show_id: int, user_id: int, seconds: int) -> None: ...



class MemoryLimits:
    """One process: dictionaries keyed by (show, user). Entries expire lazily."""

    def __init__(self, rate_count: int, rate_window: float, clock=time.monotonic) -> None:
        self.rate_count = rate_count
        self.rate_window = rate_window
        self._clock = clock
        self._muted_until: dict[tuple[int, int], float] = {}
        self._posts: dict[tuple[int, int], deque[float]] = {}
        self._last_post: dict[tuple[int, int], float] = {}

    async def check_post(self, show_id: int, user_id: int, slow_mode: int) -> None:
        now = self._clock()
        key = (show_id, user_id)
        until = self._muted_until.get(key)
        if until is not None:
            if until > now:
                _refuse(_MUTED, (until - now) * 1000)
            del self._muted_until[key]
        if slow_mode > 0:
            last = self._last_post.get(key)
            if last is not None and now - last < slow_mode:
                _refuse(_SLOW, (last + slow_mode - now) * 1000)
        posts = self._posts.setdefault(key, deque())
        while posts and posts[0] <= now - self.rate_window:
            posts.popleft()
        if len(posts) >= self.rate_count:
            _refuse(_RATE, (posts[0] + self.rate_window - now) * 1000)
        posts.append(now)
        self._last_post[key] = now
        if len(self._posts) > 100_000:  # bound memory: forget idle users
            self._forget(now)

    def _forget(self, now: float) -> None:
        horizon = max(self.rate_window, 3600)
        for key in [k for k, t in self._last_post.items() if now - t > horizon]:
            self._last_post.pop(key, None)
            self._posts.pop(key, None)

    async def mute(self, show_id: int, user_id: int, seconds: int) -> None:
        self._muted_until[(show_id, user_id)] = self._clock() + seconds


# KEYS: mute, posts (sorted set of post times), slow-mode marker.
# ARGV: rate count, rate window ms, slow mode ms, a unique member for this post.
# Redis's own clock, so processes on different machines agree.
_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local muted = redis.call('PTTL', KEYS[1])
if muted > 0 then return {1, muted} end
local count = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local slow = tonumber(ARGV[3])
if slow > 0 then
  local wait = redis.call('PTTL', KEYS[3])
  if wait > 0 then return {2, wait} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= count then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {3, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('PEXPIRE', KEYS[2], window)
if slow > 0 then redis.call('SET', KEYS[3], '1', 'PX', slow) end
return {0, 0}
"""


class RedisLimits:
    """Across processes: the same rules, kept in Redis keys that expire by themselves."""

    def __init__(self, client: aioredis.Redis, rate_count: int, rate_window: float, prefix: str = "lm") -> None:
        self.rate_count = rate_count
        self.rate_window = rate_window
        self._client = client
        self._prefix = prefix
        self._check = client.register_script(_CHECK)
        self._serial = itertools.count()
        self._nonce = f"{time.time_ns():x}"

    def _keys(self, show_id: int, user_id: int) -> list[str]:
        base = f"{self._prefix}:{show_id}:{user_id}"
        return [f"{base}:mute", f"{base}:posts", f"{base}:slow"]

    async def check_post(self, show_id: int, user_id: int, slow_mode: int) -> None:
        member = f"{self._nonce}:{next(self._serial)}"
        verdict, wait_ms = await self._check(
            keys=self._keys(show_id, user_id),
            args=[self.rate_count, int(self.rate_window * 1000), slow_mode * 1000, member],
        )
        if int(verdict) != _OK:
            _refuse(int(verdict), float(wait_ms))

    async def mute(self, show_id: int, user_id: int, seconds: int) -> None:
        await self._client.set(self._keys(show_id, user_id)[0], b"1", ex=seconds)

