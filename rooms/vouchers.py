"""Socket.IO events of in-stream vouchers: the host pins one, viewers claim it.

Thin, like rooms/selling.py: parse, authorise, call orders/coupons.py, broadcast, ack.
Acks are `{"ok": true, …}` or `{"ok": false, "error", "message"}` (plus `field`,
`starts_at`, `ends_at`, `min_spend` when they say more).

`voucher_pin` (host) stores the show's pinned voucher and sends `voucher_pin {voucher}`
to the show room, as `pin` does for a product; `voucher_unpin` sends `voucher_unpin
{voucher_id}`. `voucher_claim` (signed in) keeps the pinned voucher in the viewer's
wallet for checkout (twice is once). `voucher_state` answers what is pinned now, for a
joining or reconnecting client.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from orders import coupons
from orders.errors import Forbidden, Unauthorized
from orders.models import utcnow
from orders.shows import get_show, hosts_now
from rooms.events import Payload, ack_of, acked, parse
from rooms.server import Conn, Rooms, show_room
from web.appkeys import DB
from web.validation import Id

log = logging.getLogger(__name__)

DETAIL = ("field", "fields", "starts_at", "ends_at", "min_spend", "currency")


class VoucherIn(Payload):
    voucher_id: Id


class Empty(Payload):
    pass


def register(rooms: Rooms, app: web.Application) -> None:
    """Add the voucher events to the rooms' Socket.IO server (rooms/server.py)."""
    sio = rooms.sio

    def on(event: str):
        def decorate(fn):
            async def handle(sid: str, *args: Any) -> dict[str, Any]:
                return acked(rooms, sid, await ack_of(event, sid, rooms.conns.get(sid), args, fn, DETAIL))

            sio.on(event, handler=handle)
            return fn

        return decorate

    async def host_only(conn: Conn) -> None:
        """The host check of rooms/events.py: the account's current role and the show's
        current host, read for each host action."""
        if conn.is_host and conn.author is not None:
            async with app[DB].session() as session:
                if await hosts_now(session, conn.author.id, conn.show_id):
                    return
        raise Forbidden("only the show's host may do this")

    @on("voucher_pin")
    async def voucher_pin(conn: Conn, data: Any) -> dict[str, Any]:
        await host_only(conn)
        body = parse(VoucherIn, data)
        async with app[DB].transaction() as session:
            show = await get_show(session, conn.show_id)
            voucher = await coupons.pin(session, show, body.voucher_id, utcnow())
        rooms.broadcaster.emit(show_room(conn.show_id), "voucher_pin", {"voucher": voucher})
        return {"voucher": voucher}

    @on("voucher_unpin")
    async def voucher_unpin(conn: Conn, data: Any) -> dict[str, Any]:
        await host_only(conn)
        parse(Empty, data)
        async with app[DB].transaction() as session:
            voucher_id = await coupons.unpin(session, conn.show_id)
        if voucher_id is not None:
            rooms.broadcaster.emit(show_room(conn.show_id), "voucher_unpin", {"voucher_id": voucher_id})
        return {"voucher_id": voucher_id}

    @on("voucher_claim")
    async def voucher_claim(conn: Conn, data: Any) -> dict[str, Any]:
        body = parse(VoucherIn, data)
        if conn.author is None:
            raise Unauthorized("sign in to claim a voucher")
        async with app[DB].transaction() as session:
            voucher = await coupons.claim(session, conn.show_id, body.voucher_id, conn.author.id, utcnow())
        return {"voucher": voucher, "claimed": True}

    @on("voucher_state")
    async def voucher_state(conn: Conn, data: Any) -> dict[str, Any]:
        parse(Empty, data)
        async with app[DB].session() as session:
            return {"voucher": await coupons.pinned(session, conn.show_id)}
