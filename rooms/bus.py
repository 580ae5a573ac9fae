"""Room events between processes over a Redis stream.

A process delivers its own events to its own sockets directly and publishes them once;
every other process appends them to its room buffers. Events travel already encoded
(the JSON text of `[event, data]`), so nobody encodes an event twice.

Wire format of one Redis message (UTF-8): the origin process id, then one line per
event, `room TAB fragment`. JSON text never contains a raw newline, and room names
never contain a tab, so no escaping is needed. Everything published in one event-loop
turn goes out as one message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis

from web.cancellation import raise_if_cancelled

log = logging.getLogger(__name__)

CHANNEL = "livemall:rooms"  # the stream's key

Deliver = Callable[[str, str], None]  # (room, fragment)


class Bus(Protocol):
    def publish(self, room: str, fragment: str) -> None: ...

    async def run(self) -> None: ...


class LocalBus:
    """One process: nothing to tell anyone."""

    def publish(self, room: str, fragment: str) -> None:
        return None

    async def run(self) -> None:
        await asyncio.Event().wait()


class RedisBus:
    """Room events over a Redis stream (XADD/XREAD), not pub/sub.

    A stream remembers: a process that lost Redis reads on from the last entry it saw
    once Redis answers again, so what other processes sent in the meantime still reaches
    its sockets. With pub/sub, whatever was published before a process had subscribed
    again was gone (seen in tests/rooms/test_faults.py). What this process could not
    publish while Redis was away is kept (up to MAX_PENDING lines) and sent on return.
    """

    MAX_LEN = 5000  # entries kept in the stream: seconds of a busy service, for catching up
    MAX_PENDING = 10_000  # lines kept while Redis is away; beyond it the oldest are dropped
    # Well under the client's socket timeout (web.app.REDIS_SOCKET_TIMEOUT; redis-py 8
    # defaults it to 5 s): a blocking XREAD that outlives it ends in TimeoutError.
    BLOCK_MS = 1000

    def __init__(self, client: aioredis.Redis, origin: str, deliver: Deliver, channel: str = CHANNEL) -> None:
        self._client = client
        self._origin = origin
        self._deliver = deliver
        self._stream = channel
        self._outbox: list[str] = []
        self._wake = asyncio.Event()
        self.subscribed = asyncio.Event()

    def publish(self, room: str, fragment: str) -> None:
        self._outbox.append(f"{room}\t{fragment}")
        self._wake.set()

    async def run(self) -> None:
        """Publisher and reader; cancelled by the rooms' cleanup context."""
        publisher = asyncio.create_task(self._publish_loop())
        try:
            await self._read_loop()
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)

    async def _publish_loop(self) -> None:
        # One task publishes, in order: events from one process reach others in the order sent.
        delay = 0.2
        while True:
            raise_if_cancelled()
            await self._wake.wait()
            self._wake.clear()
            if not self._outbox:
                continue
            lines, self._outbox = self._outbox, []
            message = self._origin + "\n" + "\n".join(lines)
            try:
                await self._client.xadd(self._stream, {"m": message.encode()}, maxlen=self.MAX_LEN, approximate=True)
                delay = 0.2
            except Exception as exc:  # noqa: BLE001 - local delivery already happened
                raise_if_cancelled()
                # Keep them for when Redis is back, in order, within a bound.
                self._outbox[:0] = lines
                del self._outbox[: max(0, len(self._outbox) - self.MAX_PENDING)]
                log.warning("room events not yet published to other processes (%s); retrying in %.1fs",
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                self._wake.set()

    async def _read_loop(self) -> None:
        last_id: str | None = None  # None: start from the stream's end, as it is now
        delay = 0.2
        while True:
            try:
                if last_id is None:
                    newest = await self._client.xrevrange(self._stream, count=1)
                    last_id = newest[0][0].decode() if newest else "0-0"
                self.subscribed.set()
                delay = 0.2
                while True:
                    raise_if_cancelled()  # XREAD may have swallowed a cancel (web/cancellation.py)
                    batches = await self._client.xread({self._stream: last_id}, block=self.BLOCK_MS, count=500)
                    for _stream, entries in batches or ():
                        for entry_id, fields in entries:
                            last_id = entry_id.decode()  # the client speaks bytes (web.app.redis_client)
                            self._receive(fields.get(b"m", b""))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect and read on from last_id
                raise_if_cancelled()
                self.subscribed.clear()
                log.warning("room bus lost Redis (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _receive(self, data: bytes) -> None:
        text = data.decode()
        origin, _, body = text.partition("\n")
        if origin == self._origin:
            return
        for line in body.split("\n"):
            room, _, fragment = line.partition("\t")
            if fragment:
                try:
                    self._deliver(room, fragment)
                except Exception:  # noqa: BLE001 - one bad event must not stop the bus
                    log.exception("room event from %s not delivered", origin)

