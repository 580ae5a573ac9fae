"""Room events between processes over Redis pub/sub.

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

log = logging.getLogger(__name__)

CHANNEL = "livemall:rooms"

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
    def __init__(self, client: aioredis.Redis, origin: str, deliver: Deliver, channel: str = CHANNEL) -> None:
        self._client = client
        self._origin = origin
        self._deliver = deliver
        self._channel = channel
        self._outbox: list[str] = []
        self._wake = asyncio.Event()
        self.subscribed = asyncio.Event()

    def publish(self, room: str, fragment: str) -> None:
        self._outbox.append(f"{room}\t{fragment}")
        self._wake.set()

    async def run(self) -> None:
        """Publisher and subscriber; cancelled by the rooms' cleanup context."""
        publisher = asyncio.create_task(self._publish_loop())
        try:
            await self._subscribe_loop()
        finally:
            publisher.cancel()

    async def _publish_loop(self) -> None:
        # One task publishes, in order: events from one process reach others in the order sent.
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._outbox:
                continue
            lines, self._outbox = self._outbox, []
            message = self._origin + "\n" + "\n".join(lines)
            try:
                await self._client.publish(self._channel, message.encode())
            except Exception as exc:  # noqa: BLE001 - local delivery already happened
                log.warning("room events not published to other processes: %s", type(exc).__name__)

    async def _subscribe_loop(self) -> None:
        delay = 0.2
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self.subscribed.set()
                delay = 0.2
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "message":
                        self._receive(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect and carry on
                self.subscribed.clear()
                log.warning("room bus lost Redis (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                # At most a second: whatever other processes publish before this one is
                # subscribed again never reaches its sockets (pub/sub keeps nothing).
                delay = min(delay * 2, 1.0)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # noqa: BLE001
                    pass

    def _receive(self, data: bytes) -> None:
        text = data.decode() if isinstance(data, bytes) else data
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
