"""Giveaways: the host gives a product of the show's line-up away. Signed-in viewers
enter by tap while the window is open (one entry each; optionally only buyers of the
show or only members of one co-view room); at the window's end one winner is drawn,
announced in the room and given a zero-price order to ship.

Fair and auditable. When the giveaway opens, the server takes a seed from `secrets`
(32 bytes) and shows only its SHA-256 (`seed_hash`): the seed is committed before the
first entry, so nobody — the host included — can pick a seed that favours an entrant.
At the draw the seed is revealed with the SHA-256 of the sorted entry list, and the
winner's index is derived from the two alone:

    entries_text  = "\\n".join(str(user_id) for user_id in sorted(entrants))
    entries_hash  = SHA-256(entries_text as UTF-8)
    winner_index  = int(SHA-256(seed bytes + entries_hash bytes), big-endian) mod len(entrants)

so anyone holding the revealed seed and the entry list can check that `seed_hash`
matches the seed, that the list hashes to `entries_hash`, and recompute the winner
(`winner_index_of`, docs/orders.md "Giveaways").

One draw across nodes. Entries and the draw meet on the giveaway's row: an entry raises
`entries` with `UPDATE … WHERE status = 'open' AND closes_at > now` in its own
transaction, the draw moves the row from `open` with a conditional UPDATE; on
PostgreSQL the row lock orders them (an entry waiting for the draw's lock re-reads the
row and finds it drawn), on SQLite the single writer does. So the drawn list is exactly
the entries committed, and only one caller draws. The winner's order goes through the
order desk (orders/ordering.py) with unit price 0 under the idempotency key
`giveaway-<id>`: pending, checked out like any order, the stock taken once however many
nodes try. Reports leave these orders out of revenue (`not_a_giveaway`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, select, update
from sqlalchemy import exc as sa_exc

from orders.db import Database
from orders.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from orders.flash_deals import lineup_product
from orders.models import (
    CoviewRoom,
    Giveaway,
    GiveawayEntry,
    GiveawayStatus,
    Order,
    OrderStatus,
    Product,
    Show,
    User,
    utcnow,
)
from orders.ordering import OrderDesk, OrderRequest, Placed

log = logging.getLogger(__name__)

MIN_SECONDS = 10
MAX_SECONDS = 30 * 60
ELIGIBILITY = ("everyone", "buyers", "coview")
# Orders that make a viewer "a buyer of this show": paid or pending (and those paid and
# since shipped or delivered).
BUYING = (OrderStatus.pending, OrderStatus.paid, OrderStatus.shipped, OrderStatus.delivered)


class GiveawayRunning(Conflict):
    code = "giveaway_running"


class PrizeOutOfStock(Invalid):
    code = "prize_out_of_stock"


class AlreadyEntered(Conflict):
    code = "already_entered"


class GiveawayEnded(Conflict):
    code = "giveaway_ended"


class NotEligible(Forbidden):
    code = "not_eligible"


class HostCannotEnter(Forbidden):
    code = "host_cannot_enter"


# --- the draw: pure functions anyone can run ---------------------------------------------

def new_seed() -> str:
    return secrets.token_bytes(32).hex()


def seed_hash_of(seed: str) -> str:
    return hashlib.sha256(bytes.fromhex(seed)).hexdigest()


def entries_hash_of(user_ids: Sequence[int]) -> str:
    """SHA-256 of the entrants' ids, ascending, in decimal, one a line (no final newline)."""
    text = "\n".join(str(u) for u in sorted(user_ids))
    return hashlib.sha256(text.encode()).hexdigest()


def winner_index_of(seed: str, entries_hash: str, count: int) -> int:
    digest = hashlib.sha256(bytes.fromhex(seed) + bytes.fromhex(entries_hash)).digest()
    return int.from_bytes(digest, "big") % count


def draw(seed: str, user_ids: Sequence[int]) -> tuple[str, int, int]:
    """(entries_hash, winner_index, winner) for these entrants (at least one)."""
    ordered = sorted(user_ids)
    digest = entries_hash_of(ordered)
    index = winner_index_of(seed, digest, len(ordered))
    return digest, index, ordered[index]


def not_a_giveaway() -> ColumnElement[bool]:
    """For reports: the order is not a giveaway's prize (its revenue is not a sale)."""
    return Order.id.not_in(select(Giveaway.order_id).where(Giveaway.order_id.is_not(None)))


# --- the service ------------------------------------------------------------------------

@dataclass(frozen=True)
class GiveawayTerms:
    product_id: int
    seconds: int  # how long entries are taken
    only: str = "everyone"  # or "buyers" (of this show), "coview" (members of one co-view room)
    coview: str | None = None  # the co-view room's invite code, for only = "coview"

    def check(self) -> None:
        if not MIN_SECONDS <= self.seconds <= MAX_SECONDS:
            raise Invalid(f"a giveaway takes entries for {MIN_SECONDS} s to {MAX_SECONDS // 60} min",
                          field="seconds")
        if self.only not in ELIGIBILITY:
            raise Invalid(f"only: one of {', '.join(ELIGIBILITY)}", field="only")
        if (self.only == "coview") != (self.coview is not None):
            raise Invalid("a co-view room's code goes with only = \"coview\", and only there", field="coview")


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def giveaway_public(g: Giveaway, product_name: str = "") -> dict[str, Any]:
    """`giveaway_state`: what every viewer sees while it runs (never the seed)."""
    return {
        "id": g.id,
        "product_id": g.product_id,
        "product_name": product_name,
        "only": g.only,
        "opens_at": g.opens_at.isoformat(),
        "closes_at": g.closes_at.isoformat(),
        "closes_ms": _ms(g.closes_at),
        "seed_hash": g.seed_hash,
        "entries": g.entries,
        "status": g.status.value,
    }


def result_public(g: Giveaway, product_name: str, winner_name: str | None) -> dict[str, Any]:
    """`giveaway_result`: the draw and everything needed to check it (the entrants' ids
    come with `Giveaways.entrants`)."""
    return {
        **giveaway_public(g, product_name),
        "seed": g.seed if g.status is not GiveawayStatus.open else None,
        "entries_hash": g.entries_hash,
        "winner_index": g.winner_index,
        "winner": {"id": g.winner_id, "name": winner_name} if g.winner_id is not None else None,
    }


@dataclass(frozen=True)
class Drawn:
    result: dict[str, Any]  # the `giveaway_result`
    placed: Placed | None  # the winner's order (None: no entries, or the desk refused it)
    refusal: DomainError | None = None


class Giveaways:
    """Opening giveaways, taking entries, drawing once."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(self, show_id: int, host_id: int, terms: GiveawayTerms, now: datetime | None = None
                   ) -> dict[str, Any]:
        terms.check()
        now = now or utcnow()
        async with self.db.transaction() as session:
            product = await lineup_product(session, show_id, terms.product_id, made_into="given away")
            if product.stock < 1:
                raise PrizeOutOfStock("the product is out of stock", field="product_id")
            coview_id = None
            if terms.coview is not None:
                room = await session.scalar(select(CoviewRoom).where(CoviewRoom.code == terms.coview))
                if room is None or room.show_id != show_id:
                    raise Invalid("no such co-view room in this show", field="coview")
                coview_id = room.id
            running = await session.scalar(select(Giveaway.id).where(
                Giveaway.show_id == show_id, Giveaway.status == GiveawayStatus.open).limit(1))
            if running is not None:
                raise GiveawayRunning("a giveaway is already running in this show; wait for its draw")
            seed = new_seed()
            g = Giveaway(show_id=show_id, product_id=product.id, host_id=host_id, only=terms.only,
                         coview_id=coview_id, seed=seed, seed_hash=seed_hash_of(seed), opens_at=now,
                         closes_at=now + timedelta(seconds=terms.seconds), status=GiveawayStatus.open,
                         entries=0, created_at=now)
            session.add(g)
            await session.flush()
            return giveaway_public(g, product.name)

    async def _get(self, session, giveaway_id: int) -> Giveaway:
        g = await session.get(Giveaway, giveaway_id)
        if g is None:
            raise NotFound(f"no giveaway {giveaway_id}")
        return g

    async def enter(self, giveaway_id: int, user_id: int, *, show_id: int | None = None,
                    coview_id: int | None = None, now: datetime | None = None) -> dict[str, Any]:
        """Enter the user; the giveaway's state after it. `coview_id`: the co-view room the
        user is in (their socket's). Raises GiveawayEnded, AlreadyEntered, NotEligible,
        HostCannotEnter, NotFound — each taking nothing."""
        now = now or utcnow()
        async with self.db.session() as session:
            g = await self._get(session, giveaway_id)
            if show_id is not None and g.show_id != show_id:
                raise NotFound(f"no giveaway {giveaway_id} in this show")
            name = await session.scalar(select(Product.name).where(Product.id == g.product_id)) or ""
            if g.status is not GiveawayStatus.open or g.closes_at <= now:
                raise GiveawayEnded("the giveaway has closed")
            show_host = await session.scalar(select(Show.host_id).where(Show.id == g.show_id))
            if user_id in (g.host_id, show_host):  # who opened it, and the show's host
                raise HostCannotEnter("the host cannot enter their own giveaway")
            if await session.scalar(select(GiveawayEntry.id).where(
                    GiveawayEntry.giveaway_id == giveaway_id, GiveawayEntry.user_id == user_id)) is not None:
                raise AlreadyEntered("you have entered already: one entry each")
            if g.only == "buyers":
                bought = await session.scalar(select(exists().where(
                    Order.buyer_id == user_id, Order.show_id == g.show_id, Order.status.in_(BUYING),
                    not_a_giveaway())))
                if not bought:
                    raise NotEligible("only buyers of this show may enter: a paid or pending order of it")
            elif g.only == "coview" and (coview_id is None or coview_id != g.coview_id):
                raise NotEligible("only members of the giveaway's co-view room may enter")
        try:
            async with self.db.transaction() as session:
                # The row first: this is where an entry meets the draw (module docstring).
                entries = await session.scalar(
                    update(Giveaway)
                    .where(Giveaway.id == giveaway_id, Giveaway.status == GiveawayStatus.open,
                           Giveaway.closes_at > now)
                    .values(entries=Giveaway.entries + 1)
                    .returning(Giveaway.entries))
                if entries is None:
                    raise GiveawayEnded("the giveaway has closed")
                session.add(GiveawayEntry(giveaway_id=giveaway_id, user_id=user_id, at=now))
                await session.flush()
        except sa_exc.IntegrityError:
            raise AlreadyEntered("you have entered already: one entry each") from None
        state = giveaway_public(g, name)
        state["entries"] = entries
        return state

    async def draw(self, desk: OrderDesk, giveaway_id: int, now: datetime | None = None) -> Drawn | None:
        """Draw the winner if the window has closed: the result to exactly one caller
        across every node, None to the others and before the end."""
        now = now or utcnow()
        async with self.db.transaction() as session:
            g = await self._get(session, giveaway_id)
            if g.status is not GiveawayStatus.open or g.closes_at > now:
                return None
            # Claim the draw (and close entries) before reading them.
            done = await session.execute(
                update(Giveaway).where(Giveaway.id == giveaway_id, Giveaway.status == GiveawayStatus.open)
                .values(status=GiveawayStatus.no_entries, drawn_at=now)
                .execution_options(synchronize_session=False))
            if done.rowcount != 1:
                return None  # another node drew it
            entrants = list(await session.scalars(
                select(GiveawayEntry.user_id).where(GiveawayEntry.giveaway_id == giveaway_id)))
            values: dict[str, Any] = {"entries": len(entrants), "entries_hash": entries_hash_of(entrants)}
            if entrants:
                _, index, winner = draw(g.seed, entrants)
                values.update(status=GiveawayStatus.drawn, winner_index=index, winner_id=winner)
            await session.execute(update(Giveaway).where(Giveaway.id == giveaway_id).values(**values)
                                  .execution_options(synchronize_session=False))
        placed, refusal = (await self.finish(desk, giveaway_id)) if entrants else (None, None)
        return Drawn(await self.result(giveaway_id), placed, refusal)

    async def finish(self, desk: OrderDesk, giveaway_id: int) -> tuple[Placed | None, DomainError | None]:
        """Place the winner's zero-price order (idempotent: key `giveaway-<id>`) and note it."""
        async with self.db.session() as session:
            g = await self._get(session, giveaway_id)
        assert g.winner_id is not None
        try:
            placed = await desk.place(OrderRequest(
                buyer_id=g.winner_id, idempotency_key=f"giveaway-{giveaway_id}", product_id=g.product_id,
                quantity=1, show_id=g.show_id, unit_price=0))
        except DomainError as exc:
            # The prize sold out meanwhile (its unit is not set aside while entries run),
            # or the winner cannot be credited to the show: recorded, the room told.
            log.warning("giveaway %d: the winner's order was refused (%s)", giveaway_id, exc.code)
            async with self.db.transaction() as session:
                await session.execute(update(Giveaway).where(Giveaway.id == giveaway_id)
                                      .values(status=GiveawayStatus.unfulfilled))
            return None, exc
        async with self.db.transaction() as session:
            await session.execute(update(Giveaway).where(Giveaway.id == giveaway_id)
                                  .values(order_id=placed.order["id"]))
        return placed, None

    async def result(self, giveaway_id: int) -> dict[str, Any]:
        async with self.db.session() as session:
            g = await self._get(session, giveaway_id)
            name = await session.scalar(select(Product.name).where(Product.id == g.product_id)) or ""
            winner = (await session.scalar(select(User.name).where(User.id == g.winner_id))
                      if g.winner_id is not None else None)
            return result_public(g, name, winner)

    async def entrants(self, giveaway_id: int) -> list[int]:
        """The entry list (user ids, ascending) of a drawn giveaway, to check the draw with."""
        async with self.db.session() as session:
            g = await self._get(session, giveaway_id)
            if g.status is GiveawayStatus.open:
                raise Conflict("the entry list is published at the draw")
            return sorted(await session.scalars(
                select(GiveawayEntry.user_id).where(GiveawayEntry.giveaway_id == giveaway_id)))

    async def show_of(self, giveaway_id: int) -> int:
        async with self.db.session() as session:
            return (await self._get(session, giveaway_id)).show_id

    async def due(self, now: datetime | None = None) -> list[int]:
        """Open giveaways whose window has closed (the sweeper draws what a node lost)."""
        now = now or utcnow()
        async with self.db.session() as session:
            return list(await session.scalars(select(Giveaway.id).where(
                Giveaway.status == GiveawayStatus.open, Giveaway.closes_at <= now)))

    async def unfinished(self) -> list[int]:
        """Drawn giveaways without their order (the drawer died in between)."""
        async with self.db.session() as session:
            return list(await session.scalars(select(Giveaway.id).where(
                Giveaway.status == GiveawayStatus.drawn, Giveaway.order_id.is_(None))))

    async def running(self, show_id: int) -> list[dict[str, Any]]:
        async with self.db.session() as session:
            rows = (await session.execute(
                select(Giveaway, Product.name).join(Product, Product.id == Giveaway.product_id)
                .where(Giveaway.show_id == show_id, Giveaway.status == GiveawayStatus.open))).all()
        return [giveaway_public(g, name) for g, name in rows]
