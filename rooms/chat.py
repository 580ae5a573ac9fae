"""Chat messages: validation, storage (group-committed), history and deletion.

Text is stored exactly as typed (after trimming) and escaped only where it is
rendered; nothing here turns `<` into `&lt;`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orders.db import Database
from orders.errors import Invalid, NotFound, Unavailable
from orders.models import User
from orders.visible_text import has_visible_text
from rooms.models import ChatMessage

log = logging.getLogger(__name__)

HISTORY = 50  # messages a joining socket receives
CATCH_UP = 500  # at most this many missed messages are replayed after a reconnect
WRITE_BATCH = 500  # rows per group-commit transaction
# Unicode category Cc (C0, DEL, C1) except newline and tab: a regex, not a per-character loop.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a message, as every recipient sees it."""

    id: int
    name: str
    role: str  # "host" for the show's host, else the account's role

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role}


def author_of(user: User, host_id: int) -> Author:
    return Author(user.id, user.name, "host" if user.id == host_id else user.role.value)


def clean_text(text: str, max_chars: int) -> str:
    """The text to store: trimmed, 1..max_chars characters, no control characters
    other than newline and tab (NUL cannot even be stored in PostgreSQL text), and
    something visible in it (an emoji counts; ZWJ emoji sequences are kept whole)."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise Invalid("the message is empty", field="text")
    if len(text) > max_chars:
        raise Invalid(f"at most {max_chars} characters", field="text")
    if _CONTROL.search(text):
        raise Invalid("control characters are not allowed", field="text")
    if not has_visible_text(text):  # only spaces, zero-width characters, Hangul fillers, blank braille…
        raise Invalid("the message has no visible text", field="text")
    return text


def chat_public(message_id: int, room: str, author: Author, text: str, at: datetime) -> dict[str, Any]:
    return {"id": message_id, "room": room, "user": author.public(), "text": text, "at": at.isoformat()}


class ChatWriter:
    """Stores messages with group commit: everything that arrives while one
    transaction commits goes into the next one. A busy show then costs one
    commit per batch rather than per message (an fsync each on SQLite)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[tuple[dict[str, Any], asyncio.Future[int]]] = []
        self._wake = asyncio.Event()
        self._closed = False

    async def add(self, *, show_id: int, coview_id: int | None, user_id: int, text: str, at: datetime) -> int:
        """Store one message; returns its id once committed."""
        if self._closed:
            raise Unavailable("the chat is shutting down")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        row = {"show_id": show_id, "coview_id": coview_id, "user_id": user_id, "text": text, "created_at": at}
        self._pending.append((row, future))
        self._wake.set()
        return await future

    async def run(self) -> None:
        """The writer task; owned (and cancelled) by the rooms' cleanup context."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    batch, self._pending = self._pending[:WRITE_BATCH], self._pending[WRITE_BATCH:]
                    await self._write(batch)
        finally:
            self._closed = True
            for _, future in self._pending:
                if not future.done():
                    future.set_exception(Unavailable("the chat is shutting down"))

    async def _write(self, batch: list[tuple[dict[str, Any], asyncio.Future[int]]]) -> None:
        try:
            async with self._db.transaction() as session:
                ids = list(
                    await session.scalars(
                        insert(ChatMessage).returning(ChatMessage.id, sort_by_parameter_order=True),
                        [row for row, _ in batch],
                    )
                )
        except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
            log.warning("chat batch of %d not stored: %s", len(batch), type(exc).__name__)
            for _, future in batch:
                if not future.done():
                    future.set_exception(Unavailable("the chat could not be stored; retry shortly"))
            return
        for (_, future), message_id in zip(batch, ids):
            if not future.done():
                future.set_result(message_id)


def _visible(show_id: int, coview_id: int | None):
    room = ChatMessage.coview_id.is_(None)
    if coview_id is not None:
        room = or_(room, ChatMessage.coview_id == coview_id)
    return and_(ChatMessage.show_id == show_id, ChatMessage.deleted.is_(False), room)


async def history(
    session: AsyncSession, *, show_id: int, host_id: int, coview_id: int | None, after_id: int | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Messages a joining socket sees, oldest first, and whether some were left out.

    Without `after_id`: the last HISTORY. With it (a reconnect): every message after
    that id, up to CATCH_UP; `True` means the client missed more than that.
    """
    limit = HISTORY if after_id is None else CATCH_UP
    stmt = select(ChatMessage, User).join(User, User.id == ChatMessage.user_id).where(_visible(show_id, coview_id))
    if after_id is None:
        stmt = stmt.order_by(ChatMessage.id.desc()).limit(limit)
    else:
        # The newest CATCH_UP after the gap: a client that missed more gets the latest ones.
        stmt = stmt.where(ChatMessage.id > after_id).order_by(ChatMessage.id.desc()).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    truncated = after_id is not None and len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return [
        chat_public(m.id, "coview" if m.coview_id else "show", author_of(u, host_id), m.text, m.created_at)
        for m, u in rows
    ], truncated


async def delete_message(session: AsyncSession, *, show_id: int, message_id: int) -> int | None:
    """Hide a message; returns the co-view room it was in (None: the show room)."""
    message = await session.get(ChatMessage, message_id)
    if message is None or message.show_id != show_id:
        raise NotFound(f"no message {message_id} in this show")
    if not message.deleted:
        await session.execute(update(ChatMessage).where(ChatMessage.id == message_id).values(deleted=True))
    return message.coview_id
