"""The room bus against a real redis-server: a quiet stream and a cancelled read."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeout

from rooms.bus import RedisBus
from web.app import REDIS_SOCKET_TIMEOUT, redis_client


async def test_a_quiet_bus_keeps_its_redis_connection_past_the_socket_timeout(redis_url, caplog):
    # redis-py 8 bounds every read by the socket timeout (5 s): a blocking XREAD that
    # waited longer failed every 5 s and the bus reconnected, forever, on an idle show.
    client = redis_client(redis_url)
    bus = RedisBus(client, "quiet", lambda room, fragment: None, channel="test:quiet")
    caplog.set_level(logging.WARNING, logger="rooms.bus")
    task = asyncio.create_task(bus.run())
    try:
        await asyncio.wait_for(bus.subscribed.wait(), 5)
        await asyncio.sleep(REDIS_SOCKET_TIMEOUT + 1)
        assert bus.subscribed.is_set()
        assert not [r for r in caplog.records if r.name == "rooms.bus"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


class CancelSwallowingRedis(aioredis.Redis):
    """A client that turns a cancelled blocking read into its own timeout error, as a
    timeout racing a cancel can in redis-py."""

    async def xread(self, *args, **kwargs):
        try:
            return await super().xread(*args, **kwargs)
        except asyncio.CancelledError:
            raise RedisTimeout("Timeout reading from redis") from None


async def test_a_cancelled_bus_stops_even_when_the_client_swallows_the_cancel(redis_url):
    client = CancelSwallowingRedis.from_url(redis_url, socket_timeout=REDIS_SOCKET_TIMEOUT)
    received: list[tuple[str, str]] = []
    bus = RedisBus(client, "listener", lambda room, fragment: received.append((room, fragment)),
                   channel="test:cancel")
    task = asyncio.create_task(bus.run())
    try:
        await asyncio.wait_for(bus.subscribed.wait(), 5)
        # It is really reading: an event from another process arrives.
        await client.xadd("test:cancel", {"m": "other\nshow:1\t[\"chat\",{}]".encode()})
        for _ in range(50):
            if received:
                break
            await asyncio.sleep(0.05)
        assert received == [("show:1", '["chat",{}]')]

        task.cancel()
        done, _ = await asyncio.wait([task], timeout=3)
        assert done == {task} and task.cancelled()
    finally:
        task.cancel()
        await client.aclose()


async def test_buses_cancelled_in_the_middle_of_traffic_all_stop(redis_url):
    # Cancels land at random points of XADD/XREAD. On Python 3.11 asyncio.wait_for (which
    # redis-py wraps each send in) swallows a cancel that arrives as the send completes:
    # before the bus checked for it, nearly every bus here kept running, and a node
    # could not shut down.
    import random

    async def one(i: int) -> bool:
        client = redis_client(redis_url)
        bus = RedisBus(client, f"node{i}", lambda room, fragment: None, channel=f"test:traffic:{i % 3}")
        task = asyncio.create_task(bus.run())
        await asyncio.wait_for(bus.subscribed.wait(), 5)

        async def chatter() -> None:
            while True:
                bus.publish("show:1", '["chat",{}]')
                await asyncio.sleep(random.random() * 0.01)

        talking = asyncio.create_task(chatter())
        await asyncio.sleep(random.random() * 1.5)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=3)
        talking.cancel()
        if not done:
            task.cancel()
        await client.aclose()
        return bool(done)

    stopped = await asyncio.gather(*(one(i) for i in range(20)))
    assert stopped.count(False) == 0, f"{stopped.count(False)} of 20 buses ignored their cancel"
