"""Co-view room admission is one atomic step: joins racing for the last places of a room
never overfill it, in one process (memory) and across processes (the real Redis)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from rooms.presence import MemoryStore, Presence, RedisStore


@pytest.fixture(params=["memory", "redis"])
async def stores(request):
    """Two Presence views of one store: two processes when it is Redis."""
    if request.param == "memory":
        store = MemoryStore()
        yield Presence(store, timeout=10), Presence(store, timeout=10)
        return
    url = request.getfixturevalue("redis_url")
    a, b = aioredis.from_url(url), aioredis.from_url(url)
    await a.delete("lm:presence:c:race")
    yield Presence(RedisStore(a), timeout=10), Presence(RedisStore(b), timeout=10)
    await a.aclose()
    await b.aclose()


async def test_racing_joins_fill_a_room_exactly_to_its_limit(stores):
    first, second = stores
    joins = [(first if n % 2 else second).admit("c:race", str(n), 3) for n in range(20)]
    admitted = await asyncio.gather(*joins)
    assert sum(admitted) == 3
    assert len(await first.present("c:race")) == 3


async def test_a_present_member_is_readmitted_to_a_full_room(stores):
    first, second = stores
    for member in ("1", "2"):
        assert await first.admit("c:race", member, 2)
    assert not await second.admit("c:race", "3", 2)
    assert await second.admit("c:race", "2", 2)


async def test_a_place_frees_when_its_member_expires(redis_url):
    now = [time.time()]  # real epoch seconds: the set's own Redis expiry follows them
    client = aioredis.from_url(redis_url)
    await client.delete("lm:presence:c:expiry")
    presence = Presence(RedisStore(client), timeout=10, clock=lambda: now[0])
    try:
        assert await presence.admit("c:expiry", "1", 1)
        assert not await presence.admit("c:expiry", "2", 1)
        now[0] += 11  # the first member never connected, or its process died
        assert await presence.admit("c:expiry", "2", 1)
    finally:
        await client.aclose()
