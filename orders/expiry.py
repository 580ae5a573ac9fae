"""Unpaid orders expire and their stock returns.

`expire_due` moves every pending order whose `expires_at` has passed to `expired` and
puts its quantity back, in one transaction per sweep. The status change is a
conditional UPDATE (`… WHERE status = 'pending'`), so a payment confirmed at the same
moment and a sweeper in another process cannot double-return stock: each order is
expired at most once, and a paid order never. `Sweeper` runs it periodically and hands
what expired to a callback (the web layer sends `stock` and `order` events); each sweep
also queues the "expires soon" e-mail of holds ending within 10 minutes
(orders/notifications.py `orders_expiring`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from orders import brokers, coupons, mileage, notifications
from orders.db import Database
from orders.inventory import put_back
from orders.models import Order, OrderStatus, utcnow
from orders.ordering import orders_public

log = logging.getLogger(__name__)

SWEEP_LIMIT = 500  # orders per transaction; a backlog is worked off over several sweeps


@dataclass(frozen=True)
class Expired:
    order: dict[str, Any]  # order_public of the expired order
    buyer_id: int
    show_id: int | None
    product_id: int
    stock: int  # the product's stock after the return
    payment: tuple[str | None, str | None] = (None, None)  # (provider, its reference): a card page to close


async def expire_due(db: Database, now: datetime, limit: int = SWEEP_LIMIT) -> list[Expired]:
    async with db.transaction() as session:
        due = list(await session.scalars(
            select(Order.id).where(Order.status == OrderStatus.pending, Order.expires_at <= now)
            .order_by(Order.expires_at, Order.id).limit(limit)
        ))
        if not due:
            return []
        rows = (await session.execute(
            update(Order)
            .where(Order.id.in_(due), Order.status == OrderStatus.pending)
            .values(status=OrderStatus.expired, updated_at=now)
            .returning(Order.id, Order.product_id, Order.quantity)
            .execution_options(synchronize_session=False)
        )).all()
        returned: dict[int, int] = {}
        for _, product_id, quantity in rows:
            returned[product_id] = returned.get(product_id, 0) + quantity
        ids = [order_id for order_id, _, _ in rows]
        await brokers.reverse_credit(session, ids, now)
        await coupons.release_uses(session, ids, now)  # their coupons' uses are given back
        await mileage.undo_for_orders(session, ids, False, now)  # and the points they redeemed
        orders = list(await session.scalars(select(Order).where(Order.id.in_(ids)).order_by(Order.id)))
        public = await orders_public(session, orders)
        # Product rows last: from here to the commit the order desk waits on their locks.
        stock: dict[int, int] = {}
        for product_id in sorted(returned):  # one lock order for every sweeper: no deadlock
            stock[product_id] = await put_back(session, product_id, returned[product_id])
    return [
        Expired(order=p, buyer_id=o.buyer_id, show_id=o.show_id, product_id=o.product_id, stock=stock[o.product_id],
                payment=(o.payment_provider, o.payment_ref))
        for o, p in zip(orders, public, strict=True)
    ]


class Sweeper:
    """Runs `expire_due` every `interval` seconds until stopped."""

    def __init__(
        self,
        db: Database,
        interval: float,
        on_expired: Callable[[list[Expired]], Awaitable[None]],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.interval = interval
        self.on_expired = on_expired
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="order-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def sweep(self) -> list[Expired]:
        now = self.clock()
        expired = await expire_due(self.db, now)
        if expired:
            await self.on_expired(expired)
        async with self.db.transaction() as session:  # e-mail: "your order expires soon", once per order
            await notifications.orders_expiring(session, now)
        return expired

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                # Keep sweeping while a full batch comes back: a backlog clears quickly.
                while len(await self.sweep()) >= SWEEP_LIMIT:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a database hiccup must not end the sweeper
                log.warning("order expiry sweep failed; retrying in %.1fs", self.interval, exc_info=True)
