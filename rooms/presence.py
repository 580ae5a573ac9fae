"""Who is watching: distinct viewers of a show (and members of a co-view room) across
every process, and the audience ledger reports read.

Each process keeps its own sockets' viewer keys (a signed-in user's id, or an anonymous
socket's id) and, about once a second, refreshes them in a shared sorted set whose
scores are expiry times. The count is the set's size once expired members are dropped,
so a user with two tabs (even on two processes) counts once, and a process that dies
stops refreshing and its viewers fall out within `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as aioredis
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from orders.db import Database
from orders.models import Show, ShowViewer, utcnow

log = logging.getLogger(__name__)


class PresenceStore(Protocol):
    async def touch(self, entries: dict[str, Iterable[str]], until: float) -> None:
        """Mark members present until `until` (epoch seconds)."""

    async def drop(self, key: str, members: Iterable[str]) -> None: ...

    async def counts(self, keys: list[str], now: float) -> list[int]:
        """Members present at `now`, per key (expired ones are forgotten)."""

    async def members(self, key: str, now: float) -> list[str]: ...

    async def admit(self, key: str, member: str, limit: int, until: float, now: float) -> bool:
        """Add `member` unless `limit` others are present, in one step: joins racing for
        the last place cannot all pass a count made before any of them was added."""


class MemoryStore:
    """One process, no Redis."""

    def __init__(self) -> None:
        self._sets: dict[str, dict[str, float]] = {}

    async def touch(self, entries: dict[str, Iterable[str]], until: float) -> None:
        for key, members in entries.items():
            target = self._sets.setdefault(key, {})
            for member in members:
                target[member] = until

    async def drop(self, key: str, members: Iterable[str]) -> None:
        target = self._sets.get(key, {})
        for member in members:
            target.pop(member, None)
        if not target:
            self._sets.pop(key, None)

    def _purge(self, key: str, now: float) -> dict[str, float]:
        target = self._sets.get(key, {})
        for member in [m for m, until in target.items() if until <= now]:
            del target[member]
        return target

    async def counts(self, keys: list[str], now: float) -> list[int]:
        return [len(self._purge(key, now)) for key in keys]

    async def members(self, key: str, now: float) -> list[str]:
        return list(self._purge(key, now))

    async def admit(self, key: str, member: str, limit: int, until: float, now: float) -> bool:
        target = self._purge(key, now)
        if member not in target and len(target) >= limit:
            return False
        self._sets.setdefault(key, target)[member] = until
        return True


class RedisStore:
    """Across processes: one sorted set per key, scored by expiry time."""

    # KEYS[1] the set; ARGV: member, limit, until, now. Atomic in Redis, so the count and
    # the add cannot interleave with another process's join.
    ADMIT = """
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
    if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
        return 0
    end
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
    redis.call('EXPIREAT', KEYS[1], math.floor(tonumber(ARGV[3])) + 60)
    return 1
    """

    def __init__(self, client: aioredis.Redis, prefix: str = "lm:presence:") -> None:
        self._client = client
        self._prefix = prefix
        self._admit = client.register_script(self.ADMIT)

    async def touch(self, entries: dict[str, Iterable[str]], until: float) -> None:
        pipe = self._client.pipeline(transaction=False)
        queued = False
        for key, members in entries.items():
            mapping = {member: until for member in members}
            if mapping:
                pipe.zadd(self._prefix + key, mapping)
                pipe.expireat(self._prefix + key, int(until) + 60)
                queued = True
        if queued:
            await pipe.execute()

    async def drop(self, key: str, members: Iterable[str]) -> None:
        members = list(members)
        if members:
            await self._client.zrem(self._prefix + key, *members)

    async def counts(self, keys: list[str], now: float) -> list[int]:
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.zremrangebyscore(self._prefix + key, "-inf", now)
            pipe.zcard(self._prefix + key)
        results = await pipe.execute()
        return [int(n) for n in results[1::2]]

    async def members(self, key: str, now: float) -> list[str]:
        raw = await self._client.zrangebyscore(self._prefix + key, now, "+inf")
        return [m.decode() if isinstance(m, bytes) else m for m in raw]

    async def admit(self, key: str, member: str, limit: int, until: float, now: float) -> bool:
        return bool(await self._admit(keys=[self._prefix + key], args=[member, limit, until, now]))


class Presence:
    """This process's present members per key, and the last known totals."""

    def __init__(self, store: PresenceStore, timeout: float, clock=time.time) -> None:
        self.store = store
        self.timeout = timeout
        self._clock = clock
        self._local: dict[str, Counter[str]] = {}
        self._totals: dict[str, int] = {}
        self._watched: dict[str, float] = {}  # key -> recount until, for keys asked about

    async def enter(self, key: str, member: str) -> bool:
        """A socket of `member` is here; True when it is the member's first in this process."""
        if not self.enter_local(key, member):
            return False
        await self.publish(key, member)
        return True

    def enter_local(self, key: str, member: str) -> bool:
        """`enter` without the store: counted here at once, with no await, so a `leave`
        for the same socket can never run before it (a socket leaving mid-join)."""
        local = self._local.setdefault(key, Counter())
        local[member] += 1
        return local[member] == 1

    async def publish(self, key: str, member: str) -> None:
        """Tell the shared store now rather than at the next refresh."""
        if member not in self._local.get(key, ()):
            return  # left meanwhile
        try:
            await self.store.touch({key: [member]}, self._clock() + self.timeout)
        except Exception as exc:  # noqa: BLE001 - watching goes on; the next refresh adds it
            log.warning("presence of %s not recorded yet: %s", key, type(exc).__name__)

    async def leave(self, key: str, member: str) -> bool:
        """A socket left; True when the member has no socket left in this process."""
        local = self._local.get(key)
        if local is None or local[member] <= 0:
            return False
        local[member] -= 1
        if local[member] > 0:
            return False
        del local[member]
        if not local:
            del self._local[key]
        # Another process may still hold this member: it re-adds it at its next refresh.
        try:
            await self.store.drop(key, [member])
        except Exception as exc:  # noqa: BLE001 - it expires after `timeout` anyway
            log.warning("presence of %s not withdrawn: %s", key, type(exc).__name__)
        return True

    def local_members(self, key: str) -> list[str]:
        return list(self._local.get(key, ()))

    def total(self, key: str) -> int:
        """Last known total across processes (refreshed about once a second)."""
        now = self._clock()
        if key not in self._local:
            self._watched[key] = now + 60
        return self._totals.get(key, 0)

    async def present(self, key: str) -> list[str]:
        return await self.store.members(key, self._clock())

    async def admit(self, key: str, member: str, limit: int) -> bool:
        """Whether `member` may join `key` (a co-view room) with at most `limit` present;
        an admitted member holds its place until its socket enters or `timeout` passes."""
        now = self._clock()
        return await self.store.admit(key, member, limit, now + self.timeout, now)

    async def refresh(self) -> dict[str, int]:
        """Refresh this process's members and recount; returns the totals that changed."""
        now = self._clock()
        await self.store.touch({k: list(v) for k, v in self._local.items()}, now + self.timeout)
        for key in [k for k, until in self._watched.items() if until <= now]:
            del self._watched[key]
        keys = list(self._local.keys() | self._watched.keys() | self._totals.keys())
        counts = await self.store.counts(keys, now)
        changed = {}
        for key, count in zip(keys, counts):
            if self._totals.get(key) != count:
                changed[key] = count
            if count or key in self._local or key in self._watched:
                self._totals[key] = count
            else:
                self._totals.pop(key, None)
        return changed

    async def close(self) -> None:
        """Withdraw this process's members at a clean shutdown (no phantom viewers)."""
        for key, local in list(self._local.items()):
            await self.store.drop(key, list(local))
        self._local.clear()


class AudienceLedger:
    """Records each distinct viewer of a show once (`show_viewers`) and keeps
    `shows.peak_viewers` up to date; written in batches from the presence loop."""

    SEEN_LIMIT = 200_000

    def __init__(self, db: Database) -> None:
        self._db = db
        self._seen: set[tuple[int, str]] = set()
        self._pending: list[dict] = []
        self._peaks: dict[int, int] = {}
        self._lock = asyncio.Lock()

    def saw(self, show_id: int, viewer_key: str, user_id: int | None) -> None:
        if (show_id, viewer_key) in self._seen:
            return
        if len(self._seen) > self.SEEN_LIMIT:
            self._seen.clear()  # duplicates are ignored by the unique constraint anyway
        self._seen.add((show_id, viewer_key))
        self._pending.append({"show_id": show_id, "viewer_key": viewer_key, "user_id": user_id, "first_seen": utcnow()})

    async def flush(self, peaks: dict[int, int]) -> None:
        # One flush at a time: a caller returns only once what was pending is written.
        async with self._lock:
            await self._flush(peaks)

    async def _flush(self, peaks: dict[int, int]) -> None:
        rows, self._pending = self._pending, []
        higher = {s: n for s, n in peaks.items() if n > self._peaks.get(s, 0)}
        if not rows and not higher:
            return
        try:
            async with self._db.transaction() as session:
                if rows:
                    insert = sqlite_insert if self._db.is_sqlite else pg_insert
                    await session.execute(insert(ShowViewer).on_conflict_do_nothing(), rows)
                for show_id, count in higher.items():
                    # Only ever raised, so two processes writing at once cannot lower it.
                    await session.execute(
                        update(Show).where(Show.id == show_id, Show.peak_viewers < count).values(peak_viewers=count)
                    )
        except Exception as exc:  # noqa: BLE001 - retried at the next tick
            log.warning("audience ledger not written: %s", type(exc).__name__)
            self._pending = rows + self._pending
            return
        for show_id, count in higher.items():
            self._peaks[show_id] = count
