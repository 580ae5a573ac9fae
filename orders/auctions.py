"""Live auctions: the host auctions a lot (one unit of a product of the show's line-up)
with a start price, a table of bid steps and a clock; viewers bid one step at a time
or set a maximum and let the auction bid for them (proxy bidding, as eBay and Whatnot
do).

The price rule. Each bidder's highest accepted maximum counts. The leader is the
bidder with the highest maximum (on equal maxima, the one who reached it first); the
price is the second-highest maximum plus one step (the step that applies at that
maximum), capped at the leader's maximum; with a single bidder, the start price.
`hammer_price` states it over the maxima; the live state (orders/live_counters.py)
keeps it bid by bid, so the price everyone sees is always that rule applied so far.

A bid is refused, with its own code and nothing changed, when it is below the next
step (`bid_too_low`), after the end (`auction_ended`), by the seller (the host who
started it: `seller_cannot_bid`), from a user muted in the show (`muted`), or when the
leader's new maximum is not above their own (`already_leading`). Server time decides:
the live state's clock (Redis's with several processes), never the client's.

Clock modes: "sudden death" ends at its time; "extend" resets the clock to N seconds
when a bid is accepted in its last N seconds.

Every bid, accepted or not, goes into `auction_bids` (group-committed) with the live
state's sequence number: the ledger a dispute is settled from, and what the benchmark
replays. The lot is closed exactly once: the live state hands CLOSED to one caller,
and the row moves from open with a conditional UPDATE, so even two nodes racing the
same clock make one outcome and one order. The winner's order is placed through the
order desk at the hammer price under the idempotency key `auction-<id>`: pending, the
usual checkout after it, the stock taken once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select, update

from orders.db import Database
from orders.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from orders.flash_deals import lineup_product
from orders.read_once import ReadOnce
from orders.live_counters import (
    ALREADY,
    ALREADY_LEADING,
    CLOSED,
    ENDED,
    MUTED,
    NOT_OPEN,
    OK,
    SELLER,
    TOO_LOW,
    UNKNOWN,
    AuctionSnapshot,
    Judged,
    LiveCounters,
    step_at,
)
from orders.models import (
    Auction,
    AuctionBid,
    AuctionMode,
    AuctionStatus,
    Product,
    utcnow,
)
from orders.ordering import OrderDesk, OrderRequest, Placed

log = logging.getLogger(__name__)

MIN_SECONDS = 10
MAX_SECONDS = 30 * 60
MAX_EXTEND = 120
MAX_COUNTDOWN = 10 * 60
MAX_PRICE = 2**53 - 1  # exact in the live state's Lua numbers
MAX_STEPS = 20
DEFAULT_STEPS: tuple[tuple[int, int], ...] = ((0, 100), (10_000, 500), (100_000, 1_000), (1_000_000, 10_000))


class BidTooLow(Invalid):
    code = "bid_too_low"


class AuctionEnded(Conflict):
    code = "auction_ended"


class AuctionNotOpen(Conflict):
    code = "auction_not_open"


class SellerCannotBid(Forbidden):
    code = "seller_cannot_bid"


class BidderMuted(Forbidden):
    code = "muted"


class AlreadyLeading(Conflict):
    code = "already_leading"


class AuctionRunning(Conflict):
    code = "auction_running"


class LotOutOfStock(Invalid):
    code = "lot_out_of_stock"


def check_steps(steps: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """A step table: rising band starts from 0, each step at least one minor unit."""
    if not 1 <= len(steps) <= MAX_STEPS:
        raise Invalid(f"give 1 to {MAX_STEPS} steps", field="steps")
    table: list[tuple[int, int]] = []
    for band in steps:
        if len(band) != 2:
            raise Invalid("each step is [from price, step]", field="steps")
        start, size = int(band[0]), int(band[1])
        if not 0 <= start <= MAX_PRICE or not 1 <= size <= MAX_PRICE:
            raise Invalid("a step is at least 1 and prices are 0 or more", field="steps")
        if table and start <= table[-1][0]:
            raise Invalid("step bands must rise", field="steps")
        table.append((start, size))
    if table[0][0] != 0:
        raise Invalid("the first step band starts at 0", field="steps")
    return tuple(table)


@dataclass(frozen=True)
class AuctionTerms:
    product_id: int
    start_price: int
    seconds: int
    mode: AuctionMode = AuctionMode.extend
    extend_seconds: int = 10
    steps: tuple[tuple[int, int], ...] = DEFAULT_STEPS
    countdown: int = 0

    def check(self) -> None:
        if not 0 <= self.start_price <= MAX_PRICE:
            raise Invalid("the start price must be 0 or more (minor units)", field="start_price")
        if not MIN_SECONDS <= self.seconds <= MAX_SECONDS:
            raise Invalid(f"an auction lasts {MIN_SECONDS} s to {MAX_SECONDS // 60} min", field="seconds")
        if self.mode is AuctionMode.extend and not 1 <= self.extend_seconds <= MAX_EXTEND:
            raise Invalid(f"extend by 1 to {MAX_EXTEND} s", field="extend_seconds")
        if not 0 <= self.countdown <= MAX_COUNTDOWN:
            raise Invalid(f"the countdown is 0 to {MAX_COUNTDOWN} s", field="countdown")
        check_steps(self.steps)


def hammer_price(start_price: int, steps: Sequence[tuple[int, int]],
                 bids: Iterable[tuple[int, int]]) -> tuple[int | None, int]:
    """(winner, price) from accepted bids (bidder, maximum) in the order they were
    accepted, by the rule in the module docstring."""
    best: dict[int, tuple[int, int]] = {}  # bidder -> (highest maximum, when first reached)
    for order, (bidder, amount) in enumerate(bids):
        if bidder not in best or amount > best[bidder][0]:
            best[bidder] = (amount, order)
    if not best:
        return None, start_price
    winner = min(best, key=lambda b: (-best[b][0], best[b][1]))
    top = best[winner][0]
    others = [m for b, (m, _) in best.items() if b != winner]
    if not others:
        return winner, start_price
    second = max(others)
    return winner, min(top, second + step_at(steps, second))


def next_price(start_price: int, steps: Sequence[tuple[int, int]], price: int, has_leader: bool) -> int:
    return price + step_at(steps, price) if has_leader else start_price


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def auction_public(a: Auction, live: AuctionSnapshot | None, product_name: str = "",
                   server_ms: int | None = None) -> dict[str, Any]:
    """`auction_state` as every viewer sees it (never anyone's maximum)."""
    steps = [tuple(s) for s in a.steps]
    if live is not None:
        price, leader, name, ends_ms, bids = live.price, live.leader, live.leader_name, live.ends_ms, live.bids
    else:
        price, leader, name, ends_ms, bids = (a.final_price if a.final_price is not None else a.start_price,
                                             a.winner_id, "", _ms(a.ends_at), 0)
    status = a.status.value
    return {
        "id": a.id,
        "product_id": a.product_id,
        "product_name": product_name,
        "currency": a.currency,
        "start_price": a.start_price,
        "steps": [list(s) for s in steps],
        "mode": a.mode.value,
        "extend_seconds": a.extend_seconds,
        "price": price,
        "next_price": next_price(a.start_price, steps, price, leader is not None),
        "leader": {"id": leader, "name": name} if leader is not None else None,
        "bids": bids,
        "opens_at": a.opens_at.isoformat(),
        "ends_at": _from_ms(ends_ms).isoformat(),
        "ends_ms": ends_ms,
        "server_ms": server_ms,
        "status": status,
        "winner": {"id": a.winner_id, "name": name} if a.winner_id is not None and status != "open" else None,
        "final_price": a.final_price,
        "order_id": a.order_id,
    }


@dataclass(frozen=True)
class Closed:
    state: dict[str, Any]  # the final `auction_state`
    placed: Placed | None  # the winner's order (None: no bids, or the order was refused)
    refusal: DomainError | None = None


class BidLedger:
    """Writes bids with group commit: everything that arrives while one transaction
    commits goes into the next, so a burst of bids costs a few commits, not one each."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def add(self, row: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush(), name="bid-ledger")
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self._db.transaction() as session:
                    await session.execute(insert(AuctionBid), [row for row, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiter hears of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class Auctions:
    """Starting lots, judging bids (with the ledger), closing lots once."""

    def __init__(self, db: Database, counters: LiveCounters) -> None:
        self.db = db
        self.counters = counters
        self.ledger = BidLedger(db)
        # Lots' terms never change once opened: kept while open, read once at a time.
        self._lots: ReadOnce[int, tuple[Auction, str]] = ReadOnce(
            self._read, lambda kept: kept[0].status is AuctionStatus.open)

    async def start(self, show_id: int, seller_id: int, terms: AuctionTerms, now: datetime | None = None
                    ) -> dict[str, Any]:
        terms.check()
        now = now or utcnow()
        async with self.db.transaction() as session:
            product = await lineup_product(session, show_id, terms.product_id, made_into="auctioned")
            if product.stock < 1:
                raise LotOutOfStock("the product is out of stock", field="product_id")
            running = await session.scalar(select(Auction.id).where(
                Auction.show_id == show_id, Auction.status == AuctionStatus.open).limit(1))
            if running is not None:
                raise AuctionRunning("an auction is already running in this show; wait for it to end")
            opens = now + timedelta(seconds=terms.countdown)
            lot = Auction(show_id=show_id, product_id=product.id, seller_id=seller_id, start_price=terms.start_price,
                          currency=product.currency, steps=[list(s) for s in terms.steps], mode=terms.mode,
                          extend_seconds=terms.extend_seconds if terms.mode is AuctionMode.extend else 0,
                          opens_at=opens, ends_at=opens + timedelta(seconds=terms.seconds),
                          status=AuctionStatus.open, created_at=now)
            session.add(lot)
            await session.flush()
            name = product.name
        self._lots.keep(lot.id, (lot, name))
        await self.counters.auction_open(lot.id, lot.start_price, terms.steps, _ms(lot.opens_at), _ms(lot.ends_at),
                                         lot.extend_seconds * 1000, seller_id)
        return auction_public(lot, await self.counters.auction_state(lot.id), name, _ms(now))

    async def get(self, auction_id: int) -> tuple[Auction, str]:
        return await self._lots.get(auction_id)

    async def _read(self, auction_id: int) -> tuple[Auction, str]:
        async with self.db.session() as session:
            lot = await session.get(Auction, auction_id)
            if lot is None:
                raise NotFound(f"no auction {auction_id}")
            name = await session.scalar(select(Product.name).where(Product.id == lot.product_id)) or ""
        return lot, name

    async def state(self, auction_id: int) -> dict[str, Any]:
        lot, name = await self.get(auction_id)
        live = await self.counters.auction_state(auction_id)
        return auction_public(lot, live, name, await self.counters.now_ms())

    async def bid(self, auction_id: int, bidder_id: int, bidder_name: str, max_amount: int | None, *,
                  show_id: int | None = None, kind: str = "bid", muted: bool = False,
                  guard_key: str | None = None,
                  announce: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], Judged]:
        """Judge a bid (max_amount None: one tap at the next step) and record it in the
        ledger whatever the verdict. The new `auction_state`, or the refusal raised.
        `announce` gets an accepted bid's new state at once, before the ledger commits
        (everyone sees the price move without waiting for the disk)."""
        if max_amount is not None and not 1 <= max_amount <= MAX_PRICE:
            raise Invalid("a bid is a positive amount in minor units", field="amount")
        lot, name = await self.get(auction_id)
        if show_id is not None and lot.show_id != show_id:
            raise NotFound(f"no auction {auction_id} in this show")
        if muted:  # judged by the caller (one process): still a bid of the ledger
            judged = Judged(MUTED, 0, await self.counters.now_ms(), max_amount or 0, 0, None, "", 0, 0)
        else:
            judged = await self.counters.auction_bid(auction_id, bidder_id, bidder_name, max_amount or 0, guard_key)
        accepted = judged.verdict == OK
        state: dict[str, Any] | None = None
        if accepted:
            live = AuctionSnapshot(judged.price, judged.leader, judged.leader_name, judged.ends_ms, judged.bids,
                                   False, 0)
            state = auction_public(lot, live, name, judged.at_ms)
            if announce is not None:
                announce(state)
        await self.ledger.add({
            "auction_id": auction_id, "seq": judged.seq or None, "bidder_id": bidder_id,
            "at": _from_ms(judged.at_ms), "kind": kind, "amount": judged.amount or None, "accepted": accepted,
            "reason": None if accepted else _refusal(judged, lot).code,
            "price_after": judged.price if accepted else None, "leader_after": judged.leader if accepted else None,
        })
        if state is None:
            raise _refusal(judged, lot)
        return state, judged

    async def close(self, desk: OrderDesk, auction_id: int, now: datetime | None = None) -> Closed | None:
        """Close the lot if its clock has run out. The outcome to exactly one caller
        across every node; None to the others and before the end."""
        closing = await self.counters.auction_close(auction_id)
        if closing.verdict not in (CLOSED, ALREADY, UNKNOWN):
            return None
        lot, name = await self.get(auction_id)
        now = now or utcnow()
        live = closing.state
        if closing.verdict == UNKNOWN and lot.ends_at > now:
            return None  # its live state is gone (a restarted single process): it ends at its time
        winner = live.leader if live is not None else None
        price = live.price if live is not None and winner is not None else None
        ends_at = _from_ms(live.ends_ms) if live is not None else lot.ends_at
        async with self.db.transaction() as session:
            done = await session.execute(
                update(Auction).where(Auction.id == auction_id, Auction.status == AuctionStatus.open)
                .values(status=AuctionStatus.sold if winner is not None else AuctionStatus.unsold,
                        winner_id=winner, final_price=price, ends_at=ends_at, closed_at=now))
            if done.rowcount != 1:
                return None  # closed by another node
        self._lots.forget(auction_id)
        placed, refusal = await self._winner_order(desk, auction_id) if winner is not None else (None, None)
        lot, name = await self.get(auction_id)
        return Closed(auction_public(lot, live, name, _ms(now)), placed, refusal)

    async def _winner_order(self, desk: OrderDesk, auction_id: int) -> tuple[Placed | None, DomainError | None]:
        """Place the winner's order (idempotent: key `auction-<id>`) and note it on the lot."""
        async with self.db.session() as session:
            lot = await session.get(Auction, auction_id)
        assert lot is not None and lot.winner_id is not None and lot.final_price is not None
        try:
            placed = await desk.place(OrderRequest(
                buyer_id=lot.winner_id, idempotency_key=f"auction-{auction_id}", product_id=lot.product_id,
                quantity=1, show_id=lot.show_id, unit_price=lot.final_price))
        except DomainError as exc:
            # Sold out meanwhile (the lot is one unit of the product's ordinary stock) or
            # the winner cannot be credited: recorded as unsold, the winner told why.
            log.warning("auction %d: the winner's order was refused (%s)", auction_id, exc.code)
            async with self.db.transaction() as session:
                await session.execute(update(Auction).where(Auction.id == auction_id)
                                      .values(status=AuctionStatus.unsold))
            self._lots.forget(auction_id)
            return None, exc
        async with self.db.transaction() as session:
            await session.execute(update(Auction).where(Auction.id == auction_id)
                                  .values(order_id=placed.order["id"]))
        self._lots.forget(auction_id)
        return placed, None

    async def unfinished(self) -> list[int]:
        """Sold lots without an order (their closer died in between): placed again by the sweeper."""
        async with self.db.session() as session:
            return list(await session.scalars(select(Auction.id).where(
                Auction.status == AuctionStatus.sold, Auction.order_id.is_(None))))

    async def finish(self, desk: OrderDesk, auction_id: int) -> tuple[Placed | None, DomainError | None]:
        return await self._winner_order(desk, auction_id)

    async def due(self, now: datetime | None = None) -> list[int]:
        """Open lots whose scheduled end has passed (the live clock may have been extended)."""
        now = now or utcnow()
        async with self.db.session() as session:
            return list(await session.scalars(select(Auction.id).where(
                Auction.status == AuctionStatus.open, Auction.ends_at <= now)))

    async def running(self, show_id: int) -> list[dict[str, Any]]:
        async with self.db.session() as session:
            ids = list(await session.scalars(select(Auction.id).where(
                Auction.show_id == show_id, Auction.status == AuctionStatus.open)))
        return [await self.state(i) for i in ids]

    async def bids_of(self, auction_id: int) -> list[AuctionBid]:
        """The ledger of a lot, in the order the live state judged the bids."""
        async with self.db.session() as session:
            return list(await session.scalars(select(AuctionBid).where(AuctionBid.auction_id == auction_id)
                                              .order_by(AuctionBid.seq.nulls_first(), AuctionBid.id)))

    async def close_writer(self) -> None:
        await self.ledger.close()


def _refusal(judged: Judged, lot: Auction) -> DomainError:
    v = judged.verdict
    if v == TOO_LOW:
        following = next_price(lot.start_price, [tuple(s) for s in lot.steps], judged.price,
                               judged.leader is not None)
        return BidTooLow(f"the next bid is at least {following}", field="amount", next_price=following)
    if v in (ENDED, UNKNOWN):
        return AuctionEnded("the auction has ended")
    if v == NOT_OPEN:
        return AuctionNotOpen("the auction has not opened yet", opens_at=lot.opens_at.isoformat())
    if v == SELLER:
        return SellerCannotBid("the seller cannot bid on their own lot")
    if v == MUTED:
        return BidderMuted("you are muted in this show")
    if v == ALREADY_LEADING:
        return AlreadyLeading("you lead already; a new maximum must be above your current one", field="amount")
    return Invalid(v)
