"""Socket.IO handlers: parse the payload, authorise, call the domain, broadcast, ack.

Every client event is answered by an ack, `{"ok": true, ...}` or
`{"ok": false, "error": <code>, "message": <text>}` (plus `retry_after` for limits).
Domain errors become acks here, in one place; nothing a client sends can raise out of
a handler. A refused connection gets Socket.IO's `connect_error` with
`{"message": <text>, "data": {"error": <code>, "message": <text>}}`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import redis.exceptions
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from socketio.exceptions import ConnectionRefusedError as Refused
from sqlalchemy import exc as sa_exc

from orders.errors import DomainError, Forbidden, Invalid, NotFound, Unauthorized, Unavailable
from orders.models import MAX_ID, Role, User, utcnow
from orders.shows import can_host, get_show, hosts_now
from orders import sessions
from rooms import chat, coview, questions, stage
from rooms.errors import CoviewFull, Draining, RateLimited
from rooms.moderation import check_mute_seconds
from rooms.admission import request_address
from rooms.reactions import Kind
from rooms.server import (
    Conn,
    Rooms,
    coview_key,
    coview_room,
    host_room,
    show_room,
    user_room,
)
from web.auth import COOKIE  # the HttpOnly session cookie: page JS cannot read it, so it rides along
from web.validation import Id  # a row id: beyond MAX_ID is `invalid`, not a driver error later
from web.errors import localize_reply  # a refusal's message in the socket's language

log = logging.getLogger(__name__)



class Payload(BaseModel):
    """Strict like the HTTP bodies: no "5" for 5, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)



class AuthIn(Payload):
    show: Id
    token: str | None = Field(default=None, max_length=4096)
    coview: str | None = Field(default=None, max_length=64)
    last_id: int | None = Field(default=None, ge=0, le=MAX_ID)


class ChatIn(Payload):
    text: str = Field(max_length=20_000)  # the real limit (chat_max_chars) is checked after trimming
    room: Literal["show", "coview"] = "show"


class ReactIn(Payload):
    kind: Kind


class AskIn(Payload):
    text: str = Field(max_length=20_000)


class PinIn(Payload):
    product_id: Id


class Empty(Payload):
    pass


class SegmentIn(Payload):
    segment_id: Id


class AnswerIn(Payload):
    question_id: Id


class DeleteIn(Payload):
    id: Id


class MuteIn(Payload):
    user_id: Id
    seconds: int


class SlowModeIn(Payload):
    seconds: int


def parse(model: type[Payload], data: Any) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Invalid("send a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise Invalid("; ".join(f"{f['field']}: {f['message']}" for f in fields[:5]), fields=fields) from None


REFUSAL_DETAIL = ("retry_after", "field", "fields")  # what of a domain error's detail an ack carries


def refusal(exc: DomainError, detail: tuple[str, ...] = REFUSAL_DETAIL) -> dict[str, Any]:
    reply: dict[str, Any] = {"ok": False, "error": exc.code, "message": exc.message}
    for key in detail:
        if key in exc.detail:
            reply[key] = exc.detail[key]
    return reply


UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, redis.exceptions.ConnectionError,
               redis.exceptions.TimeoutError, ConnectionRefusedError, TimeoutError)

Handler = Callable[[Conn, Any], Awaitable[dict[str, Any] | None]]


async def ack_of(event: str, sid: str, conn: Conn | None, args: tuple[Any, ...], call: Handler,
                 detail: tuple[str, ...] = REFUSAL_DETAIL) -> dict[str, Any]:
    """The ack of one client event, for every module's handlers (this one's, live
    selling's, vouchers'): `call(conn, data)`'s result, or the refusal a domain error,
    a backing service's outage or a bug turns into."""
    if conn is None:
        return {"ok": False, "error": "not_connected", "message": "connect to a show first"}
    if len(args) > 1:
        return {"ok": False, "error": "invalid", "message": "send one JSON object"}
    try:
        result = await call(conn, args[0] if args else None)
    except DomainError as exc:
        return refusal(exc, detail)
    except UNAVAILABLE as exc:
        log.warning("%s from %s: backing service unavailable (%s)", event, sid, type(exc).__name__)
        return refusal(Unavailable("a backing service is unavailable; retry shortly"), detail)
    except Exception:
        log.exception("%s from %s failed", event, sid)
        return {"ok": False, "error": "internal", "message": "internal error"}
    return {"ok": True, **(result or {})}


def acked(rooms: Rooms, sid: str, reply: dict[str, Any]) -> dict[str, Any]:
    """A reply as it goes back: a refusal counted, and in the socket's language."""
    if not reply["ok"]:
        rooms.refusals[reply["error"]] += 1
        reply = localize_reply(reply, rooms.sio.get_environ(sid))
    return reply

# Events anyone may send, signed in or not: no sign-in session is checked for them (a
# reaction, the most frequent event, then costs no session lookup at all).
ANONYMOUS_EVENTS = frozenset({"react"})
SIGNED_OUT = "this session has ended (signed out); sign in again"

# What the host changes on stage, which later actions read: a pin is credited to the
# segment current when it is stored (rooms/stage.py). python-socketio runs each event's
# handler as its own task, so a `pin` sent right after a `segment` used to read the show
# before the switch committed (issue 15, item 8). These run one at a time per show.
STAGE_EVENTS = frozenset({"segment", "pin", "unpin", "slow_mode"})


def register(rooms: Rooms, tokens) -> None:
    sio = rooms.sio
    settings = rooms.settings

    def db():
        assert rooms.db is not None
        return rooms.db

    # Socket id -> (user id, session id) of signed-in sockets: each event first asks
    # whether the session is still open (cached about a second, web/auth.py).
    signed_in_sessions: dict[str, tuple[int, str]] = {}
    # One lock per show for STAGE_EVENTS, alive while a handler holds or awaits it.
    stage_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def stage_lock(sid: str) -> asyncio.Lock | None:
        conn = rooms.conns.get(sid)
        if conn is None:
            return None
        lock = stage_locks.get(conn.show_id)
        if lock is None:
            lock = stage_locks[conn.show_id] = asyncio.Lock()
        return lock

    def on(event: str) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            async def handle(sid: str, *args: Any) -> dict[str, Any]:
                lock = stage_lock(sid) if event in STAGE_EVENTS else None
                if lock is None:
                    reply = await respond(sid, args)
                else:
                    # Taken before this task's first await: the handlers' tasks start in
                    # the order the socket's packets arrived and asyncio.Lock queues its
                    # waiters first come first served, so the host's actions are applied
                    # in the order they were sent.
                    async with lock:
                        reply = await respond(sid, args)
                return acked(rooms, sid, reply)

            async def respond(sid: str, args: tuple[Any, ...]) -> dict[str, Any]:
                async def signed_in_still(conn: Conn, data: Any) -> dict[str, Any] | None:
                    signed = signed_in_sessions.get(sid) if event not in ANONYMOUS_EVENTS else None
                    if signed is not None and not await tokens.session_live(db(), *signed):
                        # Logged out (here or on another node) while connected: the socket
                        # keeps watching but acts for nobody (issue 14, item 14).
                        raise Unauthorized(SIGNED_OUT)
                    return await fn(conn, data)

                return await ack_of(event, sid, rooms.conns.get(sid), args, signed_in_still)

            sio.on(event, handler=handle)
            return fn

        return decorate

    def signed_in(conn: Conn, what: str) -> None:
        if conn.author is None:
            raise Unauthorized(f"sign in to {what}")

    async def still_host(conn: Conn) -> bool:
        """Whether the socket's user hosts the show *now*: the account's current role and
        the show's current host are read for each host action (a handful a minute), not
        kept from the connect, so a host demoted to buyer, or a show given to another
        host, loses the controls on open sockets at once (issue 14, item 8). A socket
        found demoted leaves the host room (questions) for good."""
        if not conn.is_host or conn.author is None:
            return False
        async with db().session() as session:
            if await hosts_now(session, conn.author.id, conn.show_id):
                return True
        conn.is_host = False
        rooms.broadcaster.leave(conn.sid, host_room(conn.show_id))
        return False

    async def host_only(conn: Conn) -> None:
        if not await still_host(conn):
            raise Forbidden("only the show's host may do this")

    # --- connection ---------------------------------------------------------------

    @sio.on("connect")
    async def connect(sid: str, environ: dict, auth: Any = None) -> None:
        # Admission (rooms/admission.py): a place among the address's sockets is taken
        # before any await, and given back on every way out but a registered socket.
        address = request_address(environ)
        if not rooms.claim_socket(sid, address):
            rooms.connect_refusals["too_many_connections"] += 1
            message = f"too many connections from your address (at most {settings.sockets_per_address})"
            rooms.end_session_soon(sid)
            raise Refused(message, {"error": "too_many_connections", "message": message})
        registered = False
        try:
            try:
                conn = await admit(sid, environ, auth, address)
            except DomainError as exc:
                rooms.connect_refusals[exc.code] += 1
                data = localize_reply({"error": exc.code, "message": exc.message}, environ, exc.detail)
                raise Refused(data["message"], data) from None
            except UNAVAILABLE as exc:
                rooms.connect_refusals["unavailable"] += 1
                log.warning("connect refused, backing service unavailable: %s", type(exc).__name__)
                raise Refused("a backing service is unavailable", {"error": "unavailable"}) from None
            sock = rooms.eio_socket(sid)
            if sock is None or sock.closed or sock.closing:  # the client left while it was admitted
                raise Refused("connection closed", {"error": "closed"})
            await rooms.register(conn, sock)
            if sock.closed or sock.closing:  # left during registration: counted nowhere now
                await rooms.unregister(sid)
                raise Refused("connection closed", {"error": "closed"})
            registered = True
        finally:
            if not registered:
                rooms.release_socket(sid)
        task = asyncio.create_task(welcome(conn))
        welcomes.add(task)
        task.add_done_callback(welcomes.discard)

    welcomes: set[asyncio.Task] = set()

    async def admit(sid: str, environ: dict, auth: Any, address: str) -> Conn:
        if rooms.draining:
            raise Draining("this node is shutting down; connect again")
        if auth is None:
            raise Invalid("connect with auth {show, token?, coview?}")
        a = parse(AuthIn, auth)
        token, from_cookie = a.token, False
        if token is None:
            request = environ.get("aiohttp.request")
            token = request.cookies.get(COOKIE) if request is not None else None
            from_cookie = True
        user_id = session_id = None
        if token:
            try:
                user_id, session_id = tokens.claims(token)
                if tokens.believed(user_id, session_id) is False:
                    raise Unauthorized(SIGNED_OUT)
            except Unauthorized:
                if not from_cookie:
                    raise
                # A stale session cookie still lets the visitor watch anonymously.
                user_id = session_id = None
        at = utcnow()
        if user_id is None and a.coview is None:
            # Anonymous: no query and no database connection (the show's facts are cached
            # per show for a moment, rooms/joining.py), so a flood of joins cannot drain the pool.
            facts = await rooms.join_state.show_facts(a.show)
            rooms.remember_show(facts.id, facts.host_id, facts.slow_mode)
            return Conn(sid=sid, show_id=facts.id, author=None, is_host=False,
                        viewer_key=rooms.viewer_key(sid, None, address), last_id=a.last_id, address=address)
        async with db().session() as session:
            user = None
            if user_id is not None and session_id is not None:
                if tokens.believed(user_id, session_id):
                    user = await session.get(User, user_id)
                else:  # the user and whether the session is live, in one query
                    user, live = await sessions.user_if_live(session, session_id, user_id, at)
                    tokens.found(user_id, session_id, live)
                    if not live:
                        if not from_cookie:
                            raise Unauthorized(SIGNED_OUT)
                        user = user_id = session_id = None  # a signed-out cookie: watch anonymously
            if user_id is not None and user is None and not from_cookie:
                raise Unauthorized("unknown user")
            show = await get_show(session, a.show)
            room = None
            if a.coview is not None:
                if user is None:
                    raise Unauthorized("sign in to join a co-view room")
                room = await coview.find_room(session, a.coview, at)
                if room.show_id != show.id:
                    raise NotFound("this co-view room belongs to another show")
        rooms.remember_show(show.id, show.host_id, show.slow_mode)
        conn = Conn(
            sid=sid,
            show_id=show.id,
            author=chat.author_of(user, show.host_id) if user is not None else None,
            is_host=can_host(user, show),
            viewer_key=rooms.viewer_key(sid, user.id if user is not None else None, address),
            last_id=a.last_id,
            address=address,
        )
        if room is not None:
            if not await rooms.presence.admit(coview_key(room.id), str(user.id), room.member_limit):
                raise CoviewFull(f"this co-view room is full ({room.member_limit} members)")
            conn.coview_id = room.id
            conn.coview_owner = room.owner_id == user.id
        if user is not None and session_id is not None:
            if len(signed_in_sessions) > 2 * len(rooms.conns) + 1000:
                # Refused or abandoned joins never reach `disconnect`: drop them now and then.
                for gone in [s for s in signed_in_sessions if s not in rooms.conns]:
                    del signed_in_sessions[gone]
            signed_in_sessions[sid] = (user.id, session_id)
        return conn

    async def welcome(conn: Conn) -> None:
        """Send the joining socket its `state`, then release what was broadcast meanwhile."""
        try:
            state = await rooms.join_state.build(
                show_id=conn.show_id,
                user_id=conn.user_id,
                is_host=conn.is_host,
                coview_id=conn.coview_id,
                coview_owner=conn.coview_owner,
                last_id=conn.last_id,
            )
        except Exception:
            log.exception("state for %s not built; disconnecting it", conn.sid)
            await rooms.sio.disconnect(conn.sid)
            return
        state.update(
            viewers=rooms.viewers_now(conn.show_id),
            me=conn.author.public() if conn.author else None,
            host=conn.is_host,
        )
        rooms.broadcaster.send(conn.sid, "state", state)
        rooms.broadcaster.release(conn.sid)

    @sio.on("disconnect")
    async def disconnect(sid: str, reason: Any = None) -> None:
        signed_in_sessions.pop(sid, None)
        await rooms.unregister(sid)

    @sio.on("*")
    async def unknown(event: str, sid: str, *args: Any) -> dict[str, Any]:
        rooms.refusals["unknown_event"] += 1
        return {"ok": False, "error": "unknown_event", "message": f"no event {str(event)[:40]!r}"}

    # --- viewers ------------------------------------------------------------------

    @on("chat")
    async def send_chat(conn: Conn, data: Any) -> dict[str, Any]:
        body = parse(ChatIn, data)
        signed_in(conn, "chat")
        if body.room == "coview" and conn.coview_id is None:
            raise Invalid("you are not in a co-view room", field="room")
        text = chat.clean_text(body.text, settings.chat_max_chars)
        if not (conn.is_host and await still_host(conn)):
            await rooms.limits.check_post(conn.show_id, conn.author.id, rooms.shows[conn.show_id].slow_mode)
        at = utcnow()
        coview_id = conn.coview_id if body.room == "coview" else None
        message_id = await rooms.writer.add(
            show_id=conn.show_id, coview_id=coview_id, user_id=conn.author.id, text=text, at=at
        )
        rooms.chat_messages += 1
        payload = chat.chat_public(message_id, body.room, conn.author, text, at)
        target = coview_room(coview_id) if coview_id is not None else show_room(conn.show_id)
        rooms.broadcaster.emit(target, "chat", payload)
        return {"id": message_id}

    @on("react")
    async def react(conn: Conn, data: Any) -> None:
        # The address's budget first: a flood is refused before any parsing.
        now = asyncio.get_running_loop().time()
        if not conn.taps.allow(now) or not rooms.tap_budget.allow(conn.address, now):
            raise RateLimited("too many reactions", retry_after=1)
        body = parse(ReactIn, data)
        rooms.reactions.add(conn.show_id, body.kind)

    @on("ask")
    async def ask(conn: Conn, data: Any) -> dict[str, Any]:
        body = parse(AskIn, data)
        signed_in(conn, "ask a question")
        text = chat.clean_text(body.text, settings.chat_max_chars)
        if not (conn.is_host and await still_host(conn)):
            # Questions share the chat's budget: asking is not a way around a mute or the rate limit.
            await rooms.limits.check_post(conn.show_id, conn.author.id, 0)
        async with db().transaction() as session:
            question = await questions.ask(
                session, show_id=conn.show_id, user=conn.author, coview_id=conn.coview_id, text=text, at=utcnow()
            )
        send_question(conn.show_id, question, conn.coview_id)
        return {"id": question["id"]}

    def send_question(show_id: int, question: dict[str, Any], coview_id: int | None) -> None:
        b = rooms.broadcaster
        b.emit(host_room(show_id), "question", question)
        # The asker (all their tabs) sees its state; a relayed question also reaches the co-view room.
        b.emit(coview_room(coview_id) if coview_id is not None else user_room(question["user"]["id"]), "question", question)

    # --- host controls ------------------------------------------------------------

    @on("segment")
    async def change_segment(conn: Conn, data: Any) -> None:
        await host_only(conn)
        body = parse(SegmentIn, data)
        async with db().transaction() as session:
            show = await get_show(session, conn.show_id)
            segment = await stage.change_segment(session, show, body.segment_id)
        rooms.broadcaster.emit(show_room(conn.show_id), "segment", segment)

    @on("pin")
    async def pin(conn: Conn, data: Any) -> None:
        await host_only(conn)
        body = parse(PinIn, data)
        async with db().transaction() as session:
            show = await get_show(session, conn.show_id)
            product = await stage.pin(session, show, body.product_id, utcnow())
        rooms.broadcaster.emit(show_room(conn.show_id), "pin", {"product": product})

    @on("unpin")
    async def unpin(conn: Conn, data: Any) -> dict[str, Any]:
        await host_only(conn)
        parse(Empty, data)
        async with db().transaction() as session:
            show = await get_show(session, conn.show_id)
            product_id = await stage.unpin(session, show, utcnow())
        if product_id is not None:
            rooms.broadcaster.emit(show_room(conn.show_id), "unpin", {"product_id": product_id})
        return {"product_id": product_id}

    @on("answer")
    async def answer(conn: Conn, data: Any) -> None:
        await host_only(conn)
        body = parse(AnswerIn, data)
        async with db().transaction() as session:
            question, coview_id = await questions.answer(
                session, show_id=conn.show_id, question_id=body.question_id, at=utcnow()
            )
        send_question(conn.show_id, question, coview_id)

    @on("delete_chat")
    async def delete_chat(conn: Conn, data: Any) -> None:
        await host_only(conn)
        body = parse(DeleteIn, data)
        async with db().transaction() as session:
            coview_id = await chat.delete_message(session, show_id=conn.show_id, message_id=body.id)
        target = coview_room(coview_id) if coview_id is not None else show_room(conn.show_id)
        rooms.broadcaster.emit(target, "chat_deleted", {"id": body.id})

    @on("mute")
    async def mute(conn: Conn, data: Any) -> None:
        await host_only(conn)
        body = parse(MuteIn, data)
        seconds = check_mute_seconds(body.seconds)
        async with db().session() as session:
            target = await session.get(User, body.user_id)
            if target is None:
                raise NotFound(f"no user {body.user_id}")
            if target.role is Role.admin or target.id == rooms.shows[conn.show_id].host_id:
                raise Invalid("the host and admins cannot be muted", field="user_id")
        await rooms.limits.mute(conn.show_id, target.id, seconds)
        rooms.broadcaster.emit(user_room(target.id), "muted", {"show": conn.show_id, "seconds": seconds})

    @on("slow_mode")
    async def slow_mode(conn: Conn, data: Any) -> None:
        await host_only(conn)
        body = parse(SlowModeIn, data)
        async with db().transaction() as session:
            show = await get_show(session, conn.show_id)
            seconds = await stage.set_slow_mode(session, show, body.seconds)
        rooms.set_slow_mode(conn.show_id, seconds)
        rooms.broadcaster.emit(show_room(conn.show_id), "slow_mode", {"seconds": seconds})
