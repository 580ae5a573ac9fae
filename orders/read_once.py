"""Rows a process keeps, read from the database at most once at a time.

A burst of bids or buys on an auction lot or a flash deal this process has not seen yet
waits on one read instead of making one each (each read would hold a pooled
connection). Used by orders/auctions.py and orders/flash_deals.py, whose terms never
change once started, so a kept row stays good while ``fresh`` says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadOnce(Generic[K, V]):
    def __init__(self, read: Callable[[K], Awaitable[V]], fresh: Callable[[V], bool]) -> None:
        self._read = read
        self._fresh = fresh
        self._kept: dict[K, V] = {}
        self._reading: dict[K, asyncio.Future[V]] = {}

    def keep(self, key: K, value: V) -> None:
        self._kept[key] = value

    def forget(self, key: K) -> None:
        self._kept.pop(key, None)

    async def get(self, key: K) -> V:
        kept = self._kept.get(key)
        if kept is not None and self._fresh(kept):
            return kept
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.ensure_future(self._read_and_keep(key))
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        return await asyncio.shield(reading)

    async def _read_and_keep(self, key: K) -> V:
        value = await self._read(key)
        self._kept[key] = value
        return value
