"""Stock: the gate that never sells more than there is.

The `products.stock` column is the only authority, on SQLite and PostgreSQL, with one
process or many. Every change to it is made while holding that row's write lock
(PostgreSQL row lock; SQLite's database write lock), so two writers can never both see
the same last unit: the gate is exact across processes without anything in Redis.

What makes it fast is not a cleverer lock but fewer and shorter lock holds. A flash
sale puts hundreds of buyers on one row; taking the lock once per buyer serialises them
at one transaction each (the `SELECT … FOR UPDATE` baseline in bench/flash_sale.py).
Instead `ProductQueues` gathers the buyers of one product that arrive while batches are
in flight and serves them together: one lock hold, one multi-row insert, one commit per
group (orders/ordering.py inserts before it locks, so the lock covers only the settling).
When nobody else is waiting a batch is a single order and starts at once, so a quiet
shop pays no delay. The benchmark numbers are in docs/performance.md ("Flash sale").
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import NotFound, SoldOut
from orders.models import Product

log = logging.getLogger(__name__)

_products = Product.__table__


async def lock_stock(session: AsyncSession, product_id: int) -> int:
    """Take the product row's write lock and return its stock.

    A no-op UPDATE rather than SELECT … FOR UPDATE because it means the same on both
    databases: on SQLite it must be the first statement of the transaction, so the write
    lock is held before anything is read (a read first would let a concurrent writer
    commit in between and make the later write fail with SQLITE_BUSY).
    """
    stock = await session.scalar(
        update(_products)
        .where(_products.c.id == product_id)
        .values(stock=_products.c.stock)
        .returning(_products.c.stock)
    )
    if stock is None:
        raise NotFound(f"no product {product_id}")
    return stock


async def lock_stock_taking(session: AsyncSession, product_id: int, quantity: int) -> tuple[int, int]:
    """Take the product row's write lock, removing `quantity` units in the same statement
    if that many are left: (stock before, stock now in the row).

    A batch whose orders were inserted on a good estimate — the usual case — settles
    with this one statement instead of a locking read and a write, which saves a round
    trip while the lock is held (and batches of one product queue on that lock). When
    fewer are left nothing is taken and the caller settles on the exact figure.
    """
    if quantity > 0:
        try:
            left = await take(session, product_id, quantity)
            return left + quantity, left
        except SoldOut:
            pass  # fewer left: lock without taking
    stock = await lock_stock(session, product_id)
    return stock, stock


async def take(session: AsyncSession, product_id: int, quantity: int) -> int:
    """Remove `quantity` units in one conditional UPDATE; the stock left, or SoldOut."""
    stock = await session.scalar(
        update(_products)
        .where(_products.c.id == product_id, _products.c.stock >= quantity)
        .values(stock=_products.c.stock - quantity)
        .returning(_products.c.stock)
    )
    if stock is None:
        raise SoldOut("not enough stock left", product_id=product_id)
    return stock


async def put_back(session: AsyncSession, product_id: int, quantity: int) -> int:
    """Return units of a cancelled, expired or refunded order; the stock after."""
    stock = await session.scalar(
        update(_products)
        .where(_products.c.id == product_id)
        .values(stock=_products.c.stock + quantity)
        .returning(_products.c.stock)
    )
    if stock is None:
        raise NotFound(f"no product {product_id}")
    return stock


async def set_stock_locked(session: AsyncSession, product_id: int, stock: int) -> None:
    """Write the stock of a row this transaction already locked with `lock_stock`."""
    await session.execute(update(_products).where(_products.c.id == product_id).values(stock=stock))


T = TypeVar("T")
R = TypeVar("R")
BatchResult = Sequence["R | BaseException"]


class ProductQueues(Generic[T, R]):
    """Per-product queues served in batches.

    `submit` queues an item and waits for its result. The first item for an idle
    product starts a worker; the worker takes everything queued (up to `max_batch`)
    and runs `run_batch(product_id, items)` — which returns one result or exception per
    item — then takes what arrived meanwhile, keeping at most `parallel` batches of one
    product in flight, and exits when the queue is empty. Products do not wait on
    each other.
    """

    def __init__(
        self,
        run_batch: Callable[[int, list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 250,
        parallel: int = 4,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._parallel = parallel
        self._queues: dict[int, deque[tuple[T, asyncio.Future[R]]]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._arrived: dict[int, asyncio.Event] = {}
        self._closed = False

    async def submit(self, product_id: int, item: T) -> R:
        if self._closed:
            raise RuntimeError("the order desk is closed")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(product_id, deque()).append((item, future))
        if product_id not in self._workers:
            self._arrived[product_id] = asyncio.Event()
            self._workers[product_id] = asyncio.create_task(self._serve(product_id), name=f"stock-{product_id}")
        else:
            self._arrived[product_id].set()
        return await future

    async def _serve(self, product_id: int) -> None:
        queue = self._queues[product_id]
        arrived = self._arrived[product_id]
        slots = asyncio.Semaphore(self._parallel)
        running: set[asyncio.Task[None]] = set()
        try:
            while queue or running:
                if not queue:
                    arrived.clear()
                    waiter = asyncio.ensure_future(arrived.wait())
                    await asyncio.wait({waiter, *running}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    continue
                await slots.acquire()
                batch: list[tuple[T, asyncio.Future[R]]] = []
                while queue and len(batch) < self._max_batch:
                    item, future = queue.popleft()
                    if not future.done():  # a caller that gave up is not served
                        batch.append((item, future))
                if not batch:
                    slots.release()
                    continue
                task = asyncio.create_task(self._run(product_id, batch))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _: slots.release())
                await asyncio.sleep(0)  # let the batch start before more arrivals are taken
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            raise
        finally:
            self._workers.pop(product_id, None)
            self._queues.pop(product_id, None)
            self._arrived.pop(product_id, None)
            for _, future in queue:  # only left behind when cancelled: they must not hang
                if not future.done():
                    future.cancel()

    async def _run(self, product_id: int, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run_batch(product_id, [item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.cancel()
            raise
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self) -> None:
        """Stop accepting work and let the batches in flight finish."""
        self._closed = True
        workers = list(self._workers.values())
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
