"""What a joining socket is sent first: the `state` of its show.

When a show starts, hundreds of viewers join within seconds and almost all of them get
the same stage and the same last 50 messages. Building that takes several queries, so
the shared part is built once and reused until the show room's next event (or for
MAX_AGE seconds at most, for changes made without an event). A version number per show,
bumped by every event delivered to the show room in this process, decides whether the
copy is current; one build runs at a time per show and joiners wait for it.

Why this is safe: a socket is in its rooms (events held back for it) before its state is
built; any event delivered after that reaches it, and any event delivered before that
bumped the version, so the socket does not get a copy older than that event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from orders.db import Database
from orders.errors import NotFound
from orders.models import CoviewRoom, User, utcnow
from orders.shows import get_show
from rooms import chat, questions, stage

MAX_AGE = 2.0  # seconds


@dataclass(frozen=True, slots=True)
class ShowFacts:
    """What admitting a socket needs to know about its show: read once per MAX_AGE per
    show, not once per join (an anonymous join then makes no query at all)."""

    id: int
    host_id: int
    slow_mode: int


@dataclass
class _Shared:
    version: int
    built: float
    stage: dict[str, Any]
    chat: list[dict[str, Any]]


class JoinState:
    def __init__(self, db: Database, clock=time.monotonic) -> None:
        self._db = db
        self._clock = clock
        self._versions: dict[int, int] = {}
        self._shared: dict[int, _Shared] = {}
        self._building: dict[int, asyncio.Future[_Shared]] = {}
        # show id -> (read at, facts or the NotFound it raised); one read in flight per show.
        self._facts: dict[int, tuple[float, ShowFacts | NotFound]] = {}
        self._reading: dict[int, asyncio.Future[ShowFacts | NotFound]] = {}

    def changed(self, show_id: int) -> None:
        """The show room got an event: copies built before it are stale."""
        self._versions[show_id] = self._versions.get(show_id, 0) + 1
        self._facts.pop(show_id, None)

    async def show_facts(self, show_id: int) -> ShowFacts:
        """The show's facts, from a copy at most MAX_AGE old; NotFound for no such show
        (also remembered, so made-up show ids cost no query each either)."""
        cached = self._facts.get(show_id)
        if cached is not None and self._clock() - cached[0] < MAX_AGE:
            found = cached[1]
        else:
            pending = self._reading.get(show_id)
            if pending is None:
                pending = asyncio.ensure_future(self._read_facts(show_id))
                self._reading[show_id] = pending
                pending.add_done_callback(lambda _f: self._reading.pop(show_id, None))
            found = await asyncio.shield(pending)
        if isinstance(found, NotFound):
            raise NotFound(found.message)
        return found

    async def _read_facts(self, show_id: int) -> ShowFacts | NotFound:
        read_at = self._clock()
        try:
            async with self._db.session() as session:
                show = await get_show(session, show_id)
                found: ShowFacts | NotFound = ShowFacts(show.id, show.host_id, show.slow_mode)
        except NotFound as exc:
            found = exc
        if len(self._facts) > 10_000:
            self._facts.clear()  # made-up ids must not grow this without bound
        self._facts[show_id] = (read_at, found)
        return found

    async def _shared_state(self, show_id: int) -> _Shared:
        version = self._versions.get(show_id, 0)
        cached = self._shared.get(show_id)
        if cached is not None and cached.version == version and self._clock() - cached.built < MAX_AGE:
            return cached
        pending = self._building.get(show_id)
        if pending is not None:
            shared = await asyncio.shield(pending)
            if shared.version == self._versions.get(show_id, 0):
                return shared
        future: asyncio.Future[_Shared] = asyncio.get_running_loop().create_future()
        self._building[show_id] = future
        try:
            built = self._clock()
            async with self._db.session() as session:
                show = await get_show(session, show_id)
                stage_state = await stage.stage_state(session, show, utcnow())
                history, _ = await chat.history(session, show_id=show.id, host_id=show.host_id, coview_id=None)
            shared = _Shared(version, built, stage_state, history)
            if self._versions.get(show_id, 0) == version:
                self._shared[show_id] = shared
            future.set_result(shared)
            return shared
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # marked retrieved: joiners waiting on it re-raise it themselves
            raise
        finally:
            if self._building.get(show_id) is future:
                del self._building[show_id]

    async def build(
        self,
        *,
        show_id: int,
        user_id: int | None,
        is_host: bool,
        coview_id: int | None,
        coview_owner: bool,
        last_id: int | None,
    ) -> dict[str, Any]:
        """The `state` for one socket (without `viewers`, `me` and `host`, which the caller knows)."""
        private = coview_id is not None or last_id is not None
        shared = None if private else await self._shared_state(show_id)
        if shared is not None and not is_host and user_id is None:
            # An anonymous viewer's state is the shared copy: no session, no connection.
            state = dict(shared.stage)
            state.update(chat=shared.chat, chat_gap=False, questions=[], coview=None)
            return state
        async with self._db.session() as session:
            if shared is None:
                show = await get_show(session, show_id)
                state = await stage.stage_state(session, show, utcnow())
                history, truncated = await chat.history(
                    session, show_id=show_id, host_id=show.host_id, coview_id=coview_id, after_id=last_id
                )
            else:
                state, history, truncated = dict(shared.stage), shared.chat, False
            asked: list[dict[str, Any]] = []
            if is_host:
                asked = await questions.listed(session, show_id=show_id)
            elif user_id is not None:
                asked = await questions.listed(session, show_id=show_id, user_id=user_id)
            coview = None
            if coview_id is not None:
                room = await session.get(CoviewRoom, coview_id)
                owner = await session.get(User, room.owner_id)
                coview = {
                    "code": room.code,
                    "owner": {"id": owner.id, "name": owner.name},
                    "is_owner": coview_owner,
                    "member_limit": room.member_limit,
                }
        state.update(chat=history, chat_gap=truncated, questions=asked, coview=coview)
        return state
