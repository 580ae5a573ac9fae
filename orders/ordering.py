"""Buying in-stream: idempotent orders that reserve stock without overselling.

`OrderDesk.place` is the one entry point (HTTP handlers and the benchmark call it).
A request is checked, priced and attributed, and its stock is reserved in the same
transaction that stores the order; see orders/inventory.py for why requests for one
product are served in batches. An order is `pending` until paid and holds its stock
until `expires_at` (orders/expiry.py returns it).

Idempotency: the pair (buyer, Idempotency-Key) names one order. The request's
fingerprint (product, quantity, show, co-view code) is stored beside it; a repeat with
the same fingerprint gets the stored order, a different one is refused (422). Only
accepted orders are remembered: a key whose first attempt was sold out or invalid may
be retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, any_, bindparam, delete, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import lazyload
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orders import notifications
from orders.attribution import Ask, Attribution, Audience, attribute
from orders.catalog import exhibition_price
from orders.checkout import delivery_public
from orders.db import Database
from orders.errors import Conflict, DomainError, Invalid, NotFound, SoldOut
from orders.inventory import ProductQueues, lock_stock_taking, set_stock_locked
from orders.models import (
    Committee,
    DealStatus,
    FlashDeal,
    Order,
    OrderStatus,
    Product,
    ProductKind,
    Role,
    User,
    utcnow,
)
from orders.money import total as checked_total

log = logging.getLogger(__name__)

MAX_KEY_CHARS = 100


# On PostgreSQL a batch's orders go in as one row of arrays, unnested by the server:
# one short constant statement with 17 parameters instead of SQLAlchemy's multi-row
# VALUES with 17 per order, whose per-row parameter handling was the largest share
# of the Python time of a 1,000-buyer flash sale (bench/flash_sale.py, profiled).
_UNNEST_COLUMNS = (
    ("buyer_id", "integer"), ("idempotency_key", "varchar"), ("request_hash", "varchar"),
    ("product_id", "integer"), ("quantity", "integer"), ("unit_price", "bigint"), ("currency", "varchar"),
    ("total", "bigint"), ("status", "varchar"), ("show_id", "integer"), ("segment_id", "integer"),
    ("committee_id", "integer"), ("coview_id", "integer"), ("broker_id", "integer"),
    ("created_at", "timestamptz"), ("updated_at", "timestamptz"), ("expires_at", "timestamptz"),
)
_UNNEST_INSERT = text(
    f"INSERT INTO orders ({', '.join(name for name, _ in _UNNEST_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:{name} AS {kind}[])' for name, kind in _UNNEST_COLUMNS)}) "
    "ON CONFLICT (buyer_id, idempotency_key) DO NOTHING RETURNING id, buyer_id, idempotency_key"
)
# Looking keys up with two array parameters rather than IN lists spares expanding
# hundreds of bound parameters per batch (PostgreSQL only; SQLite has no arrays).
_FIND_BY_ARRAYS = (
    select(Order)
    .where(Order.buyer_id == any_(bindparam("buyers", type_=postgresql.ARRAY(Integer))),
           Order.idempotency_key == any_(bindparam("keys", type_=postgresql.ARRAY(String))))
)


class IdempotencyMismatch(Invalid):
    code = "idempotency_mismatch"


class MissingIdempotencyKey(Invalid):
    code = "idempotency_key_required"


class QuoteRequired(Invalid):
    code = "quote_required"


class BadQuantity(Invalid):
    code = "invalid_quantity"


class Unstorable(Invalid):
    code = "order_refused_by_database"


class UseTheDeal(Conflict):
    """A plain order, in a show, of a product a flash deal of that show is selling (or
    counting down to): it would pay the list price beside the deal and escape the
    deal's limits, so it is refused and the client sent to `deal_buy` (issue 17)."""

    code = "use_flash_deal"


async def running_deals(session: AsyncSession, product_id: int, now: datetime) -> dict[int, FlashDeal]:
    """{show id: its deal} of the flash deals of this product not yet ended."""
    deals = await session.scalars(select(FlashDeal).where(
        FlashDeal.product_id == product_id, FlashDeal.status == DealStatus.open, FlashDeal.ends_at > now))
    return {deal.show_id: deal for deal in deals}


@dataclass(frozen=True)
class OrderRequest:
    buyer_id: int
    idempotency_key: str
    product_id: int
    quantity: int
    show_id: int | None = None
    coview: str | None = None
    # A price fixed by the caller (a flash deal's price, an auction's hammer price), in
    # the product's currency; None: the list or exhibition price (orders/flash_deals.py).
    unit_price: int | None = None

    def fingerprint(self) -> str:
        # repr() keeps None apart from "None" and quotes the free-text code unambiguously.
        body = f"{self.product_id}|{self.quantity}|{self.show_id!r}|{self.coview!r}"
        if self.unit_price is not None:  # only then, so earlier orders' fingerprints stand
            body += f"|{self.unit_price}"
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Placed:
    order: dict[str, Any]  # order_public() of the order
    stock: int | None  # stock left after the batch that placed it; None for a replay
    created: bool  # False: an earlier request with this key made it


_PUBLIC_FIELDS = ("id", "status", "product_id", "quantity", "unit_price", "currency", "total", "show_id",
                  "segment_id", "broker_id", "quote_id", "payment_provider", "created_at", "expires_at", "paid_at")


def row_public(row: Mapping[str, Any], committee_code: str | None) -> dict[str, Any]:
    """The order as its buyer sees it, from its column values."""
    status = row["status"]
    return {
        "id": row["id"],
        "status": status.value if isinstance(status, OrderStatus) else status,
        "product_id": row["product_id"],
        "quantity": row["quantity"],
        "unit_price": row["unit_price"],
        "currency": row["currency"],
        "total": row["total"],
        "show_id": row["show_id"],
        "segment_id": row["segment_id"],
        "committee": committee_code,
        "broker_id": row["broker_id"],
        "quote_id": row["quote_id"],
        "payment_provider": row["payment_provider"],
        "created_at": row["created_at"].isoformat(),
        "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
        "paid_at": row["paid_at"].isoformat() if row["paid_at"] else None,
    }


def order_public(order: Order, committee_code: str | None) -> dict[str, Any]:
    return row_public({name: getattr(order, name) for name in _PUBLIC_FIELDS}, committee_code)


async def committee_codes(session: AsyncSession, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(Committee.id, Committee.code).where(Committee.id.in_(wanted)))
    return dict(rows.all())


async def orders_public(session: AsyncSession, orders: Sequence[Order]) -> list[dict[str, Any]]:
    codes = await committee_codes(session, {o.committee_id for o in orders})
    # With its checkout and delivery facts (ship-to, shipping, duties, tracking).
    return [{**order_public(o, codes.get(o.committee_id)), **delivery_public(o)}  # type: ignore[arg-type]
            for o in orders]


async def list_orders(session: AsyncSession, buyer_id: int, limit: int = 200) -> list[Order]:
    stmt = select(Order).where(Order.buyer_id == buyer_id).order_by(Order.id.desc()).limit(limit)
    return list(await session.scalars(stmt))


async def get_order_for(session: AsyncSession, order_id: int, user: User) -> Order:
    """An order its buyer or an admin may see; NotFound otherwise (no hint it exists)."""
    order = await session.get(Order, order_id)
    if order is None or (order.buyer_id != user.id and user.role is not Role.admin):
        raise NotFound(f"no order {order_id}")
    return order


def check_quantity(quantity: int, max_quantity: int) -> None:
    if quantity < 1:
        raise BadQuantity("quantity must be at least 1", field="quantity")
    if quantity > max_quantity:
        raise BadQuantity(f"at most {max_quantity} per order", field="quantity")


@dataclass(frozen=True)
class _Stored:
    """An order a request's key already made, with its committee's code."""

    order: Order
    committee_code: str | None


@dataclass
class _Line:
    index: int
    request: OrderRequest
    fingerprint: str
    row: dict[str, Any] | None = None
    committee_code: str | None = None


def _is_outage(exc: BaseException) -> bool:
    """A failure of the database itself, not of one order's values."""
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or bool(
        getattr(exc, "connection_invalidated", False))


def _sold_out(product_id: int, stock: int) -> SoldOut:
    return SoldOut("sold out" if stock == 0 else f"only {stock} left", product_id=product_id, stock=stock)


class OrderDesk:
    """Places orders; owns the per-product queues (close it on shutdown)."""

    def __init__(
        self,
        db: Database,
        *,
        max_quantity: int = 100,
        expiry_seconds: int = 1800,
        clock: Callable[[], datetime] = utcnow,
        max_batch: int = 250,
        parallel: int = 4,
        audience: Audience | None = None,
    ) -> None:
        self.db = db
        self.audience = audience  # who is watching a show now (orders/attribution.py)
        self.max_quantity = max_quantity
        self.expiry = timedelta(seconds=expiry_seconds)
        self.clock = clock
        self._queues: ProductQueues[OrderRequest, Placed] = ProductQueues(
            self._serve, max_batch=max_batch, parallel=parallel)
        insert = sqlite.insert if db.is_sqlite else postgresql.insert
        table = Order.__table__
        self._insert_stmt = (
            insert(table)
            .on_conflict_do_nothing(index_elements=["buyer_id", "idempotency_key"])
            .returning(table.c.id, table.c.buyer_id, table.c.idempotency_key)
        )
        # Per product, in this process: units being reserved by batches in flight, those
        # batches, and the stock after the last commit (with a commit counter).
        self._reserving: dict[int, int] = {}
        self._batches: dict[int, set[asyncio.Future[None]]] = {}
        self._known: dict[int, tuple[int, int]] = {}
        self._commits = 0

    async def place(self, request: OrderRequest) -> Placed:
        """The order for this request: new (stock reserved) or the one its key already made.

        Raises SoldOut (409) or Invalid (422: unknown product or show, quantity, MOQ,
        kind, co-view code, key reuse).
        """
        if not request.idempotency_key or len(request.idempotency_key) > MAX_KEY_CHARS:
            raise MissingIdempotencyKey(f"send an Idempotency-Key header of 1 to {MAX_KEY_CHARS} characters",
                                        field="Idempotency-Key")
        check_quantity(request.quantity, self.max_quantity)
        return await self._queues.submit(request.product_id, request)

    async def close(self) -> None:
        await self._queues.close()

    async def _serve(self, product_id: int, requests: list[OrderRequest]) -> list[Placed | BaseException]:
        now = self.clock()
        commits_before = self._commits
        lines = [_Line(i, r, r.fingerprint()) for i, r in enumerate(requests)]
        results: list[Placed | BaseException | None] = [None] * len(lines)

        # 1. Read-only: the product, prices and attribution. Done outside the write
        #    transaction so the row lock is held only for the writes. Replays are not
        #    looked for here: a new key is the rule, and a key that already made an
        #    order is caught by the insert (ON CONFLICT) or, if refused before that,
        #    by `_answer_replays` at the end.
        async with self.db.session() as session:
            # Its pictures are not needed to sell it: one query fewer per batch.
            product = await session.get(Product, product_id, options=[lazyload(Product.images)])  # type: ignore[attr-defined]
            if product is None:
                results[:] = [Invalid(f"no product {product_id}", field="product_id") for _ in lines]
            else:
                attributions = await attribute(
                    session, [Ask(line.request.buyer_id, line.request.show_id, line.request.coview) for line in lines],
                    now, self.audience)
                prices: dict[int | None, int] = {}
                deals = (await running_deals(session, product_id, now)
                         if any(line.request.unit_price is None for line in lines) else {})
                for i, attribution in enumerate(attributions):
                    if isinstance(attribution, Invalid):
                        results[i] = attribution
                        continue
                    refusal = self._refusal(product, lines[i].request)
                    deal = deals.get(attribution.show_id) if attribution.show_id is not None else None
                    if refusal is None and deal is not None and lines[i].request.unit_price is None:
                        refusal = UseTheDeal("a flash deal sells this product in this show: buy it through the deal",
                                             field="product_id", deal_id=deal.id,
                                             opens_at=deal.opens_at.isoformat())
                    if refusal is not None:
                        results[i] = refusal
                        continue
                    if attribution.exhibition_id not in prices:
                        special = await exhibition_price(session, attribution.exhibition_id, product.id, now)
                        prices[attribution.exhibition_id] = product.price if special is None else special
                    try:
                        price = lines[i].request.unit_price
                        lines[i].row = self._row(lines[i], product,
                                                 prices[attribution.exhibition_id] if price is None else price,
                                                 attribution, now)
                    except Invalid as refused:  # an impossible total: this request alone is refused
                        results[i] = refused
                        continue
                    lines[i].committee_code = attribution.committee_code

        # Within one batch a key counts once; its repeats are answered after commit.
        late: list[int] = []
        wanting: list[int] = []
        seen: set[tuple[int, str]] = set()
        for i, line in enumerate(lines):
            if line.row is None:
                continue
            key = (line.request.buyer_id, line.request.idempotency_key)
            (late if key in seen else wanting).append(i)
            seen.add(key)
        if wanting:
            await self._reserve(product_id, product.stock if product else 0, commits_before, lines, wanting,
                                results, late)
        if late:
            async with self.db.session() as session:
                found = await self._find(session, [(lines[i].request.buyer_id, lines[i].request.idempotency_key)
                                                   for i in late])
                first = {(lines[i].request.buyer_id, lines[i].request.idempotency_key): results[i] for i in wanting}
                for i in late:
                    key = (lines[i].request.buyer_id, lines[i].request.idempotency_key)
                    order = found.get(key)
                    if order is not None:
                        results[i] = self._replay(order, lines[i])
                    elif isinstance(first.get(key), DomainError):
                        results[i] = first[key]  # a repeat in the same batch shares its refusal
                    else:
                        results[i] = Invalid("a concurrent request with this key failed; retry")
        await self._answer_replays(lines, results, set(late))
        return results  # type: ignore[return-value]

    async def _answer_replays(self, lines: list[_Line], results: list, looked_up: set[int]) -> None:
        """A refusal must not hide the order a key already made: the retry of an
        accepted order gets that order back (or 422 if its body differs) whatever the
        stock, the show or the co-view room are now. Only refused lines are looked up,
        so a burst of new orders pays nothing for it."""
        refused = [i for i, result in enumerate(results) if isinstance(result, DomainError) and i not in looked_up]
        if not refused:
            return
        async with self.db.session() as session:
            found = await self._find(session, [(lines[i].request.buyer_id, lines[i].request.idempotency_key)
                                               for i in refused])
        for i in refused:
            stored = found.get((lines[i].request.buyer_id, lines[i].request.idempotency_key))
            if stored is not None:
                results[i] = self._replay(stored, lines[i])

    def _estimate(self, product_id: int, read_stock: int, commits_before: int) -> int:
        """Stock this batch may count on: the freshest known figure less what other
        batches of this process are reserving right now."""
        known = self._known.get(product_id)
        fresh = known[1] if known is not None and known[0] > commits_before else read_stock
        return fresh - self._reserving.get(product_id, 0)

    async def _reserve(self, product_id: int, read_stock: int, commits_before: int, lines: list[_Line],
                       wanting: list[int], results: list, late: list[int]) -> None:
        """2. Reserve and store, exactly, in one transaction.

        Orders expected to fit (by `_estimate`) are inserted *before* the product row is
        locked, so batches of one product insert side by side; the lock is then held
        only to read the stock, settle, write it and commit. At the lock the stock is
        exact: orders inserted beyond it are deleted again and refused, orders left out
        by a low estimate are inserted if they fit. Estimates only cost time, never
        correctness.
        """
        waited = False
        while True:
            budget = max(0, self._estimate(product_id, read_stock, commits_before))
            candidates: list[int] = []
            for i in wanting:
                if lines[i].request.quantity <= budget:
                    candidates.append(i)
                    budget -= lines[i].request.quantity
            others = self._batches.get(product_id, set())
            if candidates or waited or not others:
                break
            # Nothing seems left, but batches in flight may still give some back:
            # let them settle first rather than race them to the lock.
            await asyncio.wait(list(others))
            waited = True
        if not candidates and not self._batches.get(product_id):
            # Nothing seems left and nothing in flight can give units back. A plain read
            # (it does not wait for the row lock) tells whether that is still so; if it
            # is, these requests are refused with a figure that was true while they
            # waited, without queuing behind the lock only to read it (a flash sale's
            # losers are most of its buyers). A belief is never enough to refuse: stock
            # may have come back through another process.
            stock = await self._read_stock(product_id)
            if all(lines[i].request.quantity > stock for i in wanting):
                for i in wanting:
                    results[i] = _sold_out(product_id, stock)
                return
        reserving = sum(lines[i].request.quantity for i in candidates)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reserving[product_id] = self._reserving.get(product_id, 0) + reserving
        self._batches.setdefault(product_id, set()).add(done)
        try:
            stock_after = await self._settle_isolated(product_id, lines, wanting, set(candidates), results, late)
        finally:
            self._reserving[product_id] -= reserving
            self._batches[product_id].discard(done)
            if not self._batches[product_id]:
                del self._batches[product_id]
                del self._reserving[product_id]
            done.set_result(None)
        for i in wanting:
            row = lines[i].row
            if results[i] is None and row is not None and "id" in row:
                results[i] = Placed(row_public(row, lines[i].committee_code), stock_after, True)

    async def _settle_isolated(self, product_id: int, lines: list[_Line], wanting: list[int], candidates: set[int],
                               results: list, late: list[int]) -> int:
        """`_settle`; if the database refuses the batch for a value in one of its orders
        (an out-of-range number, a failed check), each order is settled again in a
        transaction of its own, so the bad one is refused alone and never fails its
        neighbours. An outage (connection lost, database down) still fails them all: it
        is nobody's order's fault and the client retries with its key."""
        mark = len(late)
        try:
            return await self._settle(product_id, lines, wanting, candidates, results, late)
        except (sa_exc.DBAPIError, OverflowError) as exc:
            if _is_outage(exc) or len(wanting) == 1:
                if _is_outage(exc):
                    raise
                self._refuse_unstorable(lines[wanting[0]], exc, results, wanting[0])
                return await self._read_stock(product_id)
            log.warning("a batch of %d orders for product %d was refused by the database (%s); "
                        "settling them one by one", len(wanting), product_id, type(exc).__name__)
        del late[mark:]
        for i in wanting:  # forget what the rolled-back attempt wrote down
            results[i] = None
            if lines[i].row is not None:
                lines[i].row.pop("id", None)
        stock_after: int | None = None
        for i in wanting:
            try:
                stock_after = await self._settle(product_id, lines, [i], {i}, results, late)
            except (sa_exc.DBAPIError, OverflowError) as exc:
                if _is_outage(exc):
                    raise
                self._refuse_unstorable(lines[i], exc, results, i)
        return stock_after if stock_after is not None else await self._read_stock(product_id)

    @staticmethod
    def _refuse_unstorable(line: _Line, exc: BaseException, results: list, i: int) -> None:
        log.warning("order refused by the database for product %d: %s", line.request.product_id, type(exc).__name__)
        if line.row is not None:
            line.row.pop("id", None)
        results[i] = Unstorable("the database refused this order's values; check the quantity")

    async def _read_stock(self, product_id: int) -> int:
        async with self.db.session() as session:
            return await session.scalar(select(Product.stock).where(Product.id == product_id)) or 0

    async def _settle(self, product_id: int, lines: list[_Line], wanting: list[int], candidates: set[int],
                      results: list, late: list[int]) -> int:
        async with self.db.transaction() as session:
            conn = await session.connection()
            inserted = await self._store(conn, [lines[i] for i in sorted(candidates)])
            # Their "order placed" e-mails, in this transaction (a batch rolled back sends
            # nothing) and before the row lock, so batches write them side by side as they
            # write the orders; those of orders dropped below go with them.
            placed_at = lines[wanting[0]].row["created_at"]  # type: ignore[index]  # one `now` per batch
            await notifications.orders_placed(session, list(inserted.values()), placed_at)
            # From here on the row is ours; `written` is what it holds now.
            stock, written = await lock_stock_taking(
                session, product_id, sum(lines[i].request.quantity for i in inserted))
            remaining = stock
            drop: list[int] = []
            extra: list[int] = []
            for i in wanting:
                request = lines[i].request
                if i in candidates and i not in inserted:
                    late.append(i)  # another request with this key is stored: answer after commit
                elif request.quantity <= remaining:
                    remaining -= request.quantity
                    if i not in candidates:
                        extra.append(i)
                else:
                    results[i] = _sold_out(product_id, remaining)
                    if i in candidates:
                        drop.append(inserted[i])
            if drop:
                await conn.execute(delete(Order.__table__).where(Order.__table__.c.id.in_(drop)))
                await notifications.forget_orders_placed(session, drop)
            if extra:
                stored = await self._store(conn, [lines[i] for i in extra])
                await notifications.orders_placed(session, list(stored.values()), placed_at)
                for i in extra:
                    if i not in stored:
                        late.append(i)
                        remaining += lines[i].request.quantity
            if remaining != written:
                await set_stock_locked(session, product_id, remaining)
        self._commits += 1
        self._known[product_id] = (self._commits, remaining)
        return remaining

    async def _store(self, conn, lines: list[_Line]) -> dict[int, int]:
        """Insert these orders; {line index: order id} of those stored (a key that
        already exists is skipped, not an error). Rows go in sorted by key so two
        batches sharing keys take their index locks in the same order."""
        if not lines:
            return {}
        rows = sorted((line.row for line in lines), key=lambda r: (r["buyer_id"], r["idempotency_key"]))
        if self.db.is_sqlite:
            result = await conn.execute(self._insert_stmt, rows)
        else:
            columns = {name: [row[name] for row in rows] for name, _ in _UNNEST_COLUMNS}
            columns["status"] = [status.value for status in columns["status"]]
            result = await conn.execute(_UNNEST_INSERT, columns)
        ids = {(buyer, key): oid for oid, buyer, key in result.all()}
        stored: dict[int, int] = {}
        for line in lines:
            oid = ids.get((line.request.buyer_id, line.request.idempotency_key))
            if oid is not None:
                line.row["id"] = oid  # type: ignore[index]
                stored[line.index] = oid
        return stored

    def _refusal(self, product: Product, request: OrderRequest) -> DomainError | None:
        if product.kind is not ProductKind.retail:
            return QuoteRequired("industrial goods and packages are quoted: use POST /api/quotes", field="product_id")
        if request.quantity < product.moq:
            return BadQuantity(f"the minimum order quantity is {product.moq}", field="quantity")
        return None

    def _row(self, line: _Line, product: Product, unit_price: int, attribution: Attribution,
             now: datetime) -> dict[str, Any]:
        request = line.request
        return {
            "buyer_id": request.buyer_id,
            "idempotency_key": request.idempotency_key,
            "request_hash": line.fingerprint,
            "product_id": product.id,
            "quantity": request.quantity,
            "unit_price": unit_price,
            "currency": product.currency,
            "total": checked_total(unit_price, request.quantity),
            "status": OrderStatus.pending,
            **attribution.columns(),
            "quote_id": None,
            "payment_provider": None,
            "payment_ref": None,
            "created_at": now,
            "updated_at": now,
            "expires_at": now + self.expiry,
            "paid_at": None,
        }

    async def _find(self, session: AsyncSession, keys: list[tuple[int, str]]) -> dict[tuple[int, str], _Stored]:
        """The stored orders of these (buyer, key) pairs with their committee codes, in
        two queries however many there are (a client retrying a whole burst after a
        timeout replays hundreds at once)."""
        buyers, names = list({b for b, _ in keys}), list({k for _, k in keys})
        if self.db.is_sqlite:
            orders = await session.scalars(
                select(Order).where(Order.buyer_id.in_(buyers), Order.idempotency_key.in_(names)))
        else:
            orders = await session.scalars(_FIND_BY_ARRAYS, {"buyers": buyers, "keys": names})
        wanted = set(keys)
        # Both lists match the pairs' cross product; only the pairs asked for count.
        found = [o for o in orders if (o.buyer_id, o.idempotency_key) in wanted]
        codes = await committee_codes(session, {o.committee_id for o in found})
        return {(o.buyer_id, o.idempotency_key): _Stored(o, codes.get(o.committee_id))  # type: ignore[arg-type]
                for o in found}

    @staticmethod
    def _replay(stored: _Stored, line: _Line) -> Placed | Invalid:
        if stored.order.request_hash != line.fingerprint:
            return IdempotencyMismatch("this Idempotency-Key was used for a different order",
                                       field="Idempotency-Key")
        return Placed(order_public(stored.order, stored.committee_code), None, False)
