"""Socket.IO events of live selling: flash deals, live auctions and giveaways in the show room.

Thin, like rooms/events.py: parse, authorise, call orders/flash_deals.py or
orders/auctions.py, broadcast `deal_state` / `auction_state` to the show room, ack.
Acks follow rooms/events.py: `{"ok": true, …}` or `{"ok": false, "error", "message"}`
(plus `field`, and `next_price`, `limit`, `bought`, `stock`, `retry_after` when they
say more).

The live state is shared by every process (Redis, orders/live_counters.py), so a buyer
or bidder may be on any node. Clocks: the node that starts a deal or a lot keeps a
timer to its end (re-armed when a late bid extends the lot), and every node sweeps the
database each second for deals and lots past their time, so a node that dies does not
leave one open. Closing is decided once (the live state, then a conditional UPDATE):
whichever node gets there first announces the end and places the winner's order.
Giveaways follow the same pattern (orders/giveaways.py): the opening node's timer and
every node's sweeper try the draw, the database's conditional UPDATE lets one draw.
The sweeper also gives cancelled or expired deal orders back to their running deal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from orders.auctions import AuctionTerms, Auctions
from orders.errors import Forbidden, Invalid, Unauthorized, Unavailable
from orders.events import send_committed
from orders.flash_deals import DealTerms, FlashDeals
from orders.giveaways import Giveaways, GiveawayTerms
from orders.live_counters import LiveCounters, MemoryCounters, RedisCounters
from orders.models import AuctionMode
from orders.ordering import OrderDesk, Placed
from orders.shows import hosts_now
from rooms.events import Payload, ack_of, acked, parse
from rooms.moderation import MemoryLimits, RedisLimits
from rooms.server import Conn, Rooms, show_room
from web.appkeys import DB, REDIS
from web.validation import Id

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0  # seconds between each node's look for deals and lots past their time
# Seconds between two states of one lot or deal from this node: well inside the 200 ms
# a bid may take to reach everyone, with the rooms' own batching window (50 ms) on top.
STATE_INTERVAL = 0.03
MONEY = Field(ge=0, le=2**53 - 1)
DETAIL = ("retry_after", "field", "fields", "next_price", "limit", "bought", "stock", "opens_at")


class DealStartIn(Payload):
    product_id: Id
    price: int = MONEY
    units: int = Field(ge=1, le=1_000_000)
    per_buyer_limit: int = Field(ge=1, le=1_000_000)
    seconds: int
    countdown: int = 0


class DealBuyIn(Payload):
    deal_id: Id
    quantity: int = Field(default=1, ge=1, le=1_000_000)
    # The client's own key: a retry after a lost ack returns the first attempt's order.
    idempotency_key: str | None = Field(default=None, pattern=r"^[\x21-\x7e]{1,64}$")


class DealEndIn(Payload):
    deal_id: Id


class AuctionStartIn(Payload):
    product_id: Id
    start_price: int = MONEY
    seconds: int
    mode: Literal["sudden_death", "extend"] = "extend"
    extend_seconds: int = 10
    steps: list[list[int]] | None = Field(default=None, max_length=20)  # [[from price, step], …]
    countdown: int = 0


class BidIn(Payload):
    auction_id: Id
    amount: int | None = Field(default=None, ge=1, le=2**53 - 1)  # None: the next step


class SetMaxIn(Payload):
    auction_id: Id
    max: int = Field(ge=1, le=2**53 - 1)


class GiveawayOpenIn(Payload):
    product_id: Id
    seconds: int
    only: Literal["everyone", "buyers", "coview"] = "everyone"
    coview: str | None = Field(default=None, min_length=1, max_length=32)  # the room's invite code


class GiveawayIn(Payload):
    giveaway_id: Id


class Empty(Payload):
    pass


class MuteCheck:
    """Whether a user is muted in a show, asked of the rooms' own limits
    (rooms/moderation.py keeps no public "is muted"): with Redis the mute key rides
    into the bid's Lua script (no extra round trip); in one process the dictionary is
    read. Both reach into moderation's internals, here only."""

    def __init__(self, rooms: Rooms) -> None:
        self._rooms = rooms  # its limits are chosen at start-up (Redis or memory): read each time

    def key(self, show_id: int, user_id: int) -> str | None:
        limits = self._rooms.limits
        if isinstance(limits, RedisLimits):
            return limits._keys(show_id, user_id)[0]
        return None

    def muted_here(self, show_id: int, user_id: int) -> bool:
        limits = self._rooms.limits
        if isinstance(limits, MemoryLimits):
            until = limits._muted_until.get((show_id, user_id))
            return until is not None and until > limits._clock()
        return False


class Selling:
    """One process's part: the domain services, the end timers and the sweeper."""

    def __init__(self, rooms: Rooms, app: web.Application) -> None:
        self.rooms = rooms
        self.app = app
        self.counters: LiveCounters | None = None
        self.deals: FlashDeals | None = None
        self.auctions: Auctions | None = None
        self.giveaways: Giveaways | None = None
        self.mutes = MuteCheck(rooms)
        self._timers: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._latest: dict[tuple[str, int], tuple[int, dict[str, Any]] | None] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def desk(self) -> OrderDesk:
        from web.api_orders import DESK  # the order desk is made in the orders' own start-up

        return self.app[DESK]

    async def start(self) -> None:
        redis = self.app[REDIS]
        self.counters = RedisCounters(redis) if redis is not None else MemoryCounters()
        self.deals = FlashDeals(self.app[DB], self.counters)
        self.auctions = Auctions(self.app[DB], self.counters)
        self.giveaways = Giveaways(self.app[DB])
        self._sweeper = asyncio.create_task(self._sweep(), name="selling-sweeper")

    async def stop(self) -> None:
        self._stopped = True
        tasks = [*self._timers.values(), *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self._timers.clear()
        if self.auctions is not None:
            await self.auctions.close_writer()

    # --- broadcasting ---------------------------------------------------------------

    def emit(self, show_id: int, event: str, data: dict[str, Any]) -> None:
        if event in ("deal_state", "giveaway_state"):  # the clients' countdowns run from the server's now
            data = {**data, "server_ms": int(time.time() * 1000)}
        self.rooms.broadcaster.emit(show_room(show_id), event, data)

    def emit_latest(self, show_id: int, event: str, key: int, data: dict[str, Any]) -> None:
        """Send a snapshot that supersedes the previous one of the same thing (a lot's
        state, a deal's units left): the first at once, then at most one every
        STATE_INTERVAL — the latest. A burst of 1,000 bids then costs each viewer a
        few dozen states, not 1,000 (each is complete: price, leader, clock, count)."""
        slot = (event, key)
        if slot in self._latest:
            self._latest[slot] = (show_id, data)  # a send is due: it will carry this one
            return
        self.emit(show_id, event, data)
        self._latest[slot] = None
        loop = asyncio.get_running_loop()
        loop.call_later(STATE_INTERVAL, self._send_latest, slot)

    def _send_latest(self, slot: tuple[str, int]) -> None:
        due = self._latest.pop(slot, None)
        if due is not None and not self._stopped:
            self.emit_latest(due[0], slot[0], slot[1], due[1])

    async def order_events(self, placed: Placed, buyer_id: int) -> None:
        """As POST /api/orders sends them: `stock` and `sale` to the show, `order` to the buyer."""
        order = placed.order
        calls: list[tuple[str, int, str, dict[str, Any]]] = []
        if order["show_id"] is not None and placed.stock is not None:
            calls.append(("show", order["show_id"], "stock", {"product_id": order["product_id"],
                                                             "stock": placed.stock}))
            calls.append(("show", order["show_id"], "sale", {"product_id": order["product_id"],
                                                            "quantity": order["quantity"]}))
        calls.append(("user", buyer_id, "order", order))
        await send_committed(self.rooms.events, *calls)

    # --- ends -----------------------------------------------------------------------

    def arm(self, kind: str, ident: int, delay: float) -> None:
        key = (kind, ident)
        old = self._timers.get(key)
        if old is not None and not old.done():
            old.cancel()
        task = asyncio.create_task(self._ring(kind, ident, delay), name=f"selling-{kind}-{ident}")
        self._timers[key] = task
        task.add_done_callback(lambda t: self._timers.pop(key, None) if self._timers.get(key) is t else None)

    async def _ring(self, kind: str, ident: int, delay: float) -> None:
        assert self.counters is not None
        tries = 0
        while True:
            await asyncio.sleep(max(0.0, delay))
            try:
                if kind == "giveaway":
                    if await self.draw_giveaway(ident) or tries >= 3:
                        return
                    tries += 1  # this node's clock a hair early, or drawn elsewhere: look again
                    delay = 0.1
                    continue
                if kind == "deal":
                    if await self.end_deal(ident) is not None or tries >= 3:
                        return
                    # Not over by the live state's clock yet (this node's clock ran
                    # ahead of Redis's), or another node ended it: look again shortly.
                    tries += 1
                    delay = 0.1
                    continue
                if await self.end_auction(ident):
                    return
                live = await self.counters.auction_state(ident)
                if live is None or live.closed:
                    return  # closed elsewhere; the sweeper finishes what a dead node left
                # A late bid moved the clock: sleep to the new end (server time).
                delay = (live.ends_ms - await self.counters.now_ms()) / 1000 + 0.002
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the sweeper tries again within a second
                log.warning("%s %d not closed by its timer: %s", kind, ident, type(exc).__name__)
                return

    async def end_deal(self, deal_id: int, force: bool = False) -> dict[str, Any] | None:
        assert self.deals is not None
        final = await self.deals.close(deal_id, force=force)
        if final is not None:
            deal, _ = await self.deals.get(deal_id)
            self._latest.pop(("deal_state", deal_id), None)  # nothing stale after the end
            self.emit(deal.show_id, "deal_state", final)
        return final

    async def end_auction(self, auction_id: int) -> bool:
        """Close the lot if its time is up; whether it is over (closed here or before)."""
        assert self.auctions is not None
        closed = await self.auctions.close(self.desk, auction_id)
        if closed is None:
            lot, _ = await self.auctions.get(auction_id)
            return lot.status.value != "open"
        lot, _ = await self.auctions.get(auction_id)
        self._latest.pop(("auction_state", auction_id), None)  # nothing stale after the end
        self.emit(lot.show_id, "auction_state", closed.state)
        if closed.placed is not None and lot.winner_id is not None:
            await self.order_events(closed.placed, lot.winner_id)
        return True

    async def draw_giveaway(self, giveaway_id: int) -> bool:
        """Draw if the window has closed; whether this call drew it (announced, order sent)."""
        assert self.giveaways is not None
        drawn = await self.giveaways.draw(self.desk, giveaway_id)
        if drawn is None:
            return False
        show_id = await self.giveaways.show_of(giveaway_id)
        self._latest.pop(("giveaway_state", giveaway_id), None)  # nothing stale after the draw
        self.emit(show_id, "giveaway_result", drawn.result)
        if drawn.placed is not None and drawn.result["winner"] is not None:
            await self.order_events(drawn.placed, drawn.result["winner"]["id"])
        return True

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                assert self.deals is not None and self.auctions is not None
                for deal_id in await self.deals.due():
                    await self.end_deal(deal_id)
                for auction_id in await self.auctions.due():
                    if ("auction", auction_id) not in self._timers:
                        await self.end_auction(auction_id)
                for auction_id in await self.auctions.unfinished():
                    placed, _ = await self.auctions.finish(self.desk, auction_id)
                    lot, _ = await self.auctions.get(auction_id)
                    if placed is not None and lot.winner_id is not None:
                        await self.order_events(placed, lot.winner_id)
                assert self.giveaways is not None
                for giveaway_id in await self.giveaways.due():  # the window in the row is final
                    await self.draw_giveaway(giveaway_id)
                for giveaway_id in await self.giveaways.unfinished():
                    placed, _ = await self.giveaways.finish(self.desk, giveaway_id)
                    if placed is not None and placed.created:  # else the drawer, still at it, made it
                        winner = (await self.giveaways.result(giveaway_id))["winner"]
                        await self.order_events(placed, winner["id"])
                for state in await self.deals.give_back_released():
                    deal, _ = await self.deals.get(state["id"])
                    self.emit_latest(deal.show_id, "deal_state", state["id"], state)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("selling sweep failed: %s", type(exc).__name__)


SELLING = web.AppKey("selling", Selling)


def register(rooms: Rooms, app: web.Application) -> None:
    """Add the live-selling events to the rooms' Socket.IO server (rooms/server.py)."""
    sio = rooms.sio
    selling = Selling(rooms, app)
    app[SELLING] = selling

    def on(event: str):
        def decorate(fn):
            async def handle(sid: str, *args: Any) -> dict[str, Any]:
                return acked(rooms, sid, await ack_of(event, sid, rooms.conns.get(sid), args, started, DETAIL))

            async def started(conn: Conn, data: Any) -> dict[str, Any] | None:
                if selling.deals is None:
                    raise Unavailable("starting up; retry shortly")
                return await fn(conn, data)

            sio.on(event, handler=handle)
            return fn

        return decorate

    def signed_in(conn: Conn, what: str) -> None:
        if conn.author is None:
            raise Unauthorized(f"sign in to {what}")

    async def host_only(conn: Conn) -> None:
        """The host check of rooms/events.py: the account's current role and the show's
        current host, read for each host action."""
        if conn.is_host and conn.author is not None:
            async with app[DB].session() as session:
                if await hosts_now(session, conn.author.id, conn.show_id):
                    return
        raise Forbidden("only the show's host may do this")

    @on("selling_state")
    async def selling_state(conn: Conn, data: Any) -> dict[str, Any]:
        parse(Empty, data)
        assert selling.deals is not None and selling.auctions is not None and selling.giveaways is not None
        return {"deals": await selling.deals.running(conn.show_id),
                "auctions": await selling.auctions.running(conn.show_id),
                "giveaways": await selling.giveaways.running(conn.show_id)}

    # --- flash deals ----------------------------------------------------------------

    @on("deal_start")
    async def deal_start(conn: Conn, data: Any) -> dict[str, Any]:
        await host_only(conn)
        body = parse(DealStartIn, data)
        assert selling.deals is not None and conn.author is not None
        deal = await selling.deals.start(conn.show_id, conn.author.id, DealTerms(
            product_id=body.product_id, price=body.price, units=body.units, per_buyer_limit=body.per_buyer_limit,
            seconds=body.seconds, countdown=body.countdown))
        selling.emit(conn.show_id, "deal_state", deal)
        selling.arm("deal", deal["id"], body.countdown + body.seconds)
        return {"deal": deal}

    @on("deal_end")
    async def deal_end(conn: Conn, data: Any) -> dict[str, Any]:
        await host_only(conn)
        body = parse(DealEndIn, data)
        assert selling.deals is not None
        deal, _ = await selling.deals.get(body.deal_id)
        if deal.show_id != conn.show_id:
            raise Invalid("no such deal in this show", field="deal_id")
        return {"deal": await selling.end_deal(body.deal_id, force=True)}

    @on("deal_buy")
    async def deal_buy(conn: Conn, data: Any) -> dict[str, Any]:
        body = parse(DealBuyIn, data)
        signed_in(conn, "buy")
        assert selling.deals is not None and conn.author is not None
        bought = await selling.deals.buy(selling.desk, body.deal_id, conn.author.id, body.quantity,
                                         show_id=conn.show_id, key=body.idempotency_key)
        if not bought.placed.created:  # a retry: the first attempt's order, nothing sent again
            return {"order": bought.placed.order, "left": bought.left, "replayed": True}
        selling.emit_latest(conn.show_id, "deal_state", body.deal_id, bought.deal)
        await selling.order_events(bought.placed, conn.author.id)
        if bought.left <= 0:
            await selling.end_deal(body.deal_id)
        return {"order": bought.placed.order, "left": bought.left}

    # --- auctions -------------------------------------------------------------------

    @on("auction_start")
    async def auction_start(conn: Conn, data: Any) -> dict[str, Any]:
        await host_only(conn)
        body = parse(AuctionStartIn, data)
        assert selling.auctions is not None and conn.author is not None
        terms = AuctionTerms(product_id=body.product_id, start_price=body.start_price, seconds=body.seconds,
                             mode=AuctionMode(body.mode), extend_seconds=body.extend_seconds,
                             countdown=body.countdown)
        if body.steps is not None:
            from orders.auctions import check_steps

            terms = AuctionTerms(**{**terms.__dict__, "steps": check_steps(body.steps)})
        lot = await selling.auctions.start(conn.show_id, conn.author.id, terms)
        selling.emit(conn.show_id, "auction_state", lot)
        selling.arm("auction", lot["id"], body.countdown + body.seconds)
        return {"auction": lot}

    async def place_bid(conn: Conn, auction_id: int, amount: int | None, kind: str) -> dict[str, Any]:
        signed_in(conn, "bid")
        assert selling.auctions is not None and conn.author is not None
        user_id = conn.author.id
        state, _ = await selling.auctions.bid(
            auction_id, user_id, conn.author.name, amount, show_id=conn.show_id, kind=kind,
            muted=selling.mutes.muted_here(conn.show_id, user_id), guard_key=selling.mutes.key(conn.show_id, user_id),
            announce=lambda s: selling.emit_latest(conn.show_id, "auction_state", auction_id, s))
        return {"auction": state}

    @on("bid")
    async def bid(conn: Conn, data: Any) -> dict[str, Any]:
        body = parse(BidIn, data)
        return await place_bid(conn, body.auction_id, body.amount, "bid")

    @on("set_max")
    async def set_max(conn: Conn, data: Any) -> dict[str, Any]:
        body = parse(SetMaxIn, data)
        return await place_bid(conn, body.auction_id, body.max, "max")

    # --- giveaways -------------------------------------------------------------------

    @on("giveaway_open")
    async def giveaway_open(conn: Conn, data: Any) -> dict[str, Any]:
        await host_only(conn)
        body = parse(GiveawayOpenIn, data)
        assert selling.giveaways is not None and conn.author is not None
        giveaway = await selling.giveaways.open(conn.show_id, conn.author.id, GiveawayTerms(
            product_id=body.product_id, seconds=body.seconds, only=body.only, coview=body.coview))
        selling.emit(conn.show_id, "giveaway_state", giveaway)
        selling.arm("giveaway", giveaway["id"], body.seconds)
        return {"giveaway": giveaway}

    @on("giveaway_enter")
    async def giveaway_enter(conn: Conn, data: Any) -> dict[str, Any]:
        body = parse(GiveawayIn, data)
        signed_in(conn, "enter")
        assert selling.giveaways is not None and conn.author is not None
        state = await selling.giveaways.enter(body.giveaway_id, conn.author.id, show_id=conn.show_id,
                                              coview_id=conn.coview_id)
        selling.emit_latest(conn.show_id, "giveaway_state", body.giveaway_id, state)
        return {"entries": state["entries"]}

    @on("giveaway_entries")
    async def giveaway_entries(conn: Conn, data: Any) -> dict[str, Any]:
        """After the draw: the result and the entry list, so anyone can check the draw."""
        body = parse(GiveawayIn, data)
        assert selling.giveaways is not None
        if await selling.giveaways.show_of(body.giveaway_id) != conn.show_id:
            raise Invalid("no such giveaway in this show", field="giveaway_id")
        return {"result": await selling.giveaways.result(body.giveaway_id),
                "entrants": await selling.giveaways.entrants(body.giveaway_id)}

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await selling.start()
        yield
        await selling.stop()

    app.cleanup_ctx.append(lifecycle)
