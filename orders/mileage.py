"""Member mileage (seed 004): points earned on paid orders, redeemed at checkout.

**Terms** (the admin's, `mileage_program`): points are minor units of one `currency`
(1 point = 1 minor unit); an order in another currency neither earns nor takes points.
A redemption pays at most `redeem_share_bp` of the order's goods after its coupon (30 %
by default); points expire `expiry_days` after they were credited.

**Earning** (`earn_for_order`, when an order is paid, orders/lifecycle.py): the buyer
earns `rate_bp` of what the goods cost after discounts, rounded down, and the broker the
order is credited to (orders/brokers.py) `broker_rate_bp` — the rates of the order's
show's exhibition when the admin set one, else of its committee (the live segment's,
else the product's), else nothing.

**Undoing** (`undo_for_orders`): a refund reverses what the order earned (as much as is
left: points already spent are not clawed back below zero) and gives back the points it
redeemed; a cancellation or expiry gives back the points it redeemed.

**The ledger**: one `mileage_entries` row per movement — earn, redeem, reverse, expire —
each with a unique `key` (so a movement happens once however often a hook runs) and the
balance after it. Credits are lots with `remaining` (spent oldest-expiring first) and
`expires_at`; a lot's unspent remainder expires (an `expire` row) whenever the account is
next touched — read, redeemed from, credited — so nothing needs a sweeper.

**Never negative, even with two checkouts at once**: every movement first takes the
account's row lock with `UPDATE mileage_accounts … RETURNING balance` (a row lock on
PostgreSQL — the second checkout waits and then sees the first one's debit; SQLite's one
writer), debits with `… WHERE balance >= :points`, and a CHECK (`balance >= 0`) stands
behind both. Locks are taken order row first, then accounts by user id.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import Conflict, Invalid
from orders.models import (
    Committee,
    MileageAccount,
    MileageEntry,
    MileageProgram,
    MileageRate,
    Order,
    OrderDiscount,
    Product,
    Show,
)

HISTORY_ROWS = 100
DEFAULTS = {"currency": "USD", "redeem_share_bp": 3000, "expiry_days": 365}


class NotEnoughPoints(Conflict):
    code = "not_enough_points"


class PointsAboveShare(Invalid):
    code = "points_above_share"


class PointsCurrency(Invalid):
    code = "points_currency"


class PointsAlreadyRedeemed(Conflict):
    code = "points_already_redeemed"


# --- the programme ----------------------------------------------------------------------

async def program(session: AsyncSession) -> MileageProgram:
    row = await session.get(MileageProgram, 1)
    return row if row is not None else MileageProgram(id=1, **DEFAULTS)


async def set_program(session: AsyncSession, currency: str, redeem_share_bp: int, expiry_days: int,
                      at: datetime) -> None:
    row = await session.get(MileageProgram, 1)
    if row is None:
        session.add(MileageProgram(id=1, currency=currency, redeem_share_bp=redeem_share_bp,
                                   expiry_days=expiry_days, updated_at=at))
    else:
        row.currency, row.redeem_share_bp, row.expiry_days, row.updated_at = (
            currency, redeem_share_bp, expiry_days, at)
    await session.flush()


async def set_rate(session: AsyncSession, *, committee: str | None, exhibition_id: int | None, rate_bp: int,
                   broker_rate_bp: int, at: datetime) -> None:
    """Set the earning rates of a committee (by code) or an exhibition."""
    if (committee is None) == (exhibition_id is None):
        raise Invalid("a rate is for one committee or one exhibition", field="committee")
    committee_id = None
    if committee is not None:
        committee_id = await session.scalar(select(Committee.id).where(Committee.code == committee))
        if committee_id is None:
            raise Invalid(f"no committee {committee!r}", field="committee")
        row = await session.scalar(select(MileageRate).where(MileageRate.committee_id == committee_id))
    else:
        from orders.models import Exhibition

        if await session.get(Exhibition, exhibition_id) is None:
            raise Invalid(f"no exhibition {exhibition_id}", field="exhibition_id")
        row = await session.scalar(select(MileageRate).where(MileageRate.exhibition_id == exhibition_id))
    if row is None:
        session.add(MileageRate(committee_id=committee_id, exhibition_id=exhibition_id, rate_bp=rate_bp,
                                broker_rate_bp=broker_rate_bp, updated_at=at))
    else:
        row.rate_bp, row.broker_rate_bp, row.updated_at = rate_bp, broker_rate_bp, at
    await session.flush()


async def program_public(session: AsyncSession) -> dict[str, Any]:
    terms = await program(session)
    rows = await session.execute(select(MileageRate, Committee.code)
                                 .outerjoin(Committee, Committee.id == MileageRate.committee_id)
                                 .order_by(MileageRate.id))
    return {
        "currency": terms.currency, "redeem_share_bp": terms.redeem_share_bp, "expiry_days": terms.expiry_days,
        "rates": [{"committee": code, "exhibition_id": rate.exhibition_id, "rate_bp": rate.rate_bp,
                   "broker_rate_bp": rate.broker_rate_bp} for rate, code in rows.all()],
    }


# --- the account and its lots -----------------------------------------------------------

async def _lock(session: AsyncSession, user_id: int, at: datetime) -> int:
    """Take the account's row lock (creating the account) and return its balance."""
    dialect = session.get_bind().dialect.name
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    await session.execute(insert(MileageAccount).values(user_id=user_id, balance=0, updated_at=at)
                          .on_conflict_do_nothing(index_elements=["user_id"]))
    return int(await session.scalar(
        update(MileageAccount).where(MileageAccount.user_id == user_id).values(updated_at=at)
        .returning(MileageAccount.balance).execution_options(synchronize_session=False)))


async def _set_balance(session: AsyncSession, user_id: int, delta: int) -> int:
    """Add `delta` (a debit only if the balance covers it); the balance after."""
    stmt = update(MileageAccount).where(MileageAccount.user_id == user_id)
    if delta < 0:
        stmt = stmt.where(MileageAccount.balance >= -delta)
    after = await session.scalar(stmt.values(balance=MileageAccount.balance + delta)
                                 .returning(MileageAccount.balance).execution_options(synchronize_session=False))
    if after is None:
        raise NotEnoughPoints("not enough points")
    return int(after)


async def _consume(session: AsyncSession, user_id: int, points: int, first_lot: int | None = None) -> None:
    """Take `points` from the user's lots: `first_lot` first, then the soonest to expire."""
    lots = list(await session.scalars(
        select(MileageEntry).where(MileageEntry.user_id == user_id, MileageEntry.remaining > 0)
        .order_by(MileageEntry.expires_at, MileageEntry.id)))
    lots.sort(key=lambda lot: lot.id != first_lot)  # stable: the rest keep their order
    for lot in lots:
        if points <= 0:
            break
        take = min(points, lot.remaining or 0)
        lot.remaining = (lot.remaining or 0) - take
        points -= take
    await session.flush()


async def _entry(session: AsyncSession, user_id: int, kind: str, points: int, key: str, at: datetime, *,
                 order_id: int | None = None, expires_at: datetime | None = None,
                 first_lot: int | None = None) -> MileageEntry | None:
    """One movement, under the account's lock (taken by the caller); None if its key was seen."""
    if await session.scalar(select(MileageEntry.id).where(MileageEntry.key == key)) is not None:
        return None
    if points == 0:
        return None
    balance = await _set_balance(session, user_id, points)
    if points < 0:
        await _consume(session, user_id, -points, first_lot)
    credit = points > 0
    entry = MileageEntry(user_id=user_id, kind=kind, points=points, balance_after=balance, order_id=order_id,
                         key=key, remaining=points if credit else None, expires_at=expires_at if credit else None,
                         created_at=at)
    session.add(entry)
    await session.flush()
    return entry


async def _expire_due(session: AsyncSession, user_id: int, at: datetime) -> None:
    """Write off what is left of the user's lots past their date (under the account's lock)."""
    lots = list(await session.scalars(
        select(MileageEntry).where(MileageEntry.user_id == user_id, MileageEntry.remaining > 0,
                                   MileageEntry.expires_at <= at).order_by(MileageEntry.id)))
    for lot in lots:
        await _entry(session, user_id, "expire", -(lot.remaining or 0), f"expire:{lot.id}", at,
                     order_id=lot.order_id, first_lot=lot.id)


async def _touch(session: AsyncSession, user_ids: Collection[int], at: datetime) -> dict[int, int]:
    """Lock these accounts in user-id order (no deadlock), expire what is due: balances."""
    balances = {}
    for user_id in sorted(set(user_ids)):
        await _lock(session, user_id, at)
        await _expire_due(session, user_id, at)
        balances[user_id] = int(await session.scalar(
            select(MileageAccount.balance).where(MileageAccount.user_id == user_id)))
    return balances


# --- earning and undoing ----------------------------------------------------------------

async def _rates(session: AsyncSession, order: Order) -> tuple[int, int]:
    if order.show_id is not None:
        exhibition_id = await session.scalar(select(Show.exhibition_id).where(Show.id == order.show_id))
        if exhibition_id is not None:
            rate = await session.scalar(select(MileageRate).where(MileageRate.exhibition_id == exhibition_id))
            if rate is not None:
                return rate.rate_bp, rate.broker_rate_bp
    committee_id = order.committee_id or await session.scalar(
        select(Product.committee_id).where(Product.id == order.product_id))
    rate = await session.scalar(select(MileageRate).where(MileageRate.committee_id == committee_id))
    return (rate.rate_bp, rate.broker_rate_bp) if rate is not None else (0, 0)


async def earn_for_order(session: AsyncSession, order: Order, at: datetime) -> None:
    """Credit the buyer (and the order's broker) for a paid order, once."""
    terms = await program(session)
    if order.currency != terms.currency:
        return
    rate_bp, broker_bp = await _rates(session, order)
    discounts = int(await session.scalar(select(func.coalesce(func.sum(OrderDiscount.amount), 0))
                                         .where(OrderDiscount.order_id == order.id)) or 0)
    base = max(0, order.unit_price * order.quantity - discounts)
    earned = {order.buyer_id: base * rate_bp // 10000}
    if order.broker_id is not None and order.broker_id != order.buyer_id:
        earned[order.broker_id] = base * broker_bp // 10000
    earned = {user: points for user, points in earned.items() if points > 0}
    if not earned:
        return
    await _touch(session, earned, at)
    expires = at + timedelta(days=terms.expiry_days)
    for user_id in sorted(earned):
        await _entry(session, user_id, "earn", earned[user_id], f"earn:{order.id}:{user_id}", at,
                     order_id=order.id, expires_at=expires)


async def undo_for_orders(session: AsyncSession, order_ids: Collection[int], refunded: bool, at: datetime) -> None:
    """Orders cancelled, expired (`refunded` False) or refunded: give back their redeemed
    points; on a refund also reverse what they earned (as far as the balance allows)."""
    if not order_ids:
        return
    kinds = ("earn", "redeem") if refunded else ("redeem",)
    entries = list(await session.scalars(select(MileageEntry).where(
        MileageEntry.order_id.in_(order_ids), MileageEntry.kind.in_(kinds)).order_by(MileageEntry.id)))
    if not entries:
        return
    terms = await program(session)
    balances = await _touch(session, {e.user_id for e in entries}, at)
    for entry in entries:
        key = f"reverse:{entry.id}"
        if entry.kind == "redeem":
            await _entry(session, entry.user_id, "reverse", -entry.points, key, at, order_id=entry.order_id,
                         expires_at=at + timedelta(days=terms.expiry_days))
        else:
            back = min(entry.points, balances[entry.user_id])
            if await _entry(session, entry.user_id, "reverse", -back, key, at, order_id=entry.order_id,
                            first_lot=entry.id) is not None:
                balances[entry.user_id] -= back


# --- redeeming at checkout ------------------------------------------------------------

async def redeem(session: AsyncSession, order_id: int, buyer_id: int, points: int, at: datetime) -> Order:
    """Pay part of the buyer's pending order with points: a `points` discount line."""
    from orders import coupons

    order = await coupons.lock_pending(session, order_id, buyer_id, at)  # the order's lock first
    terms = await program(session)
    if order.currency != terms.currency:
        raise PointsCurrency(f"points pay only for orders in {terms.currency}", currency=terms.currency)
    if await session.scalar(select(OrderDiscount.id).where(
            OrderDiscount.order_id == order.id, OrderDiscount.kind == "points")) is not None:
        raise PointsAlreadyRedeemed("points are already used on this order")
    goods = order.unit_price * order.quantity - await coupons.discount_total(session, order.id)
    cap = max(0, goods) * terms.redeem_share_bp // 10000
    if points > cap:
        raise PointsAboveShare(f"points may pay at most {cap} of this order", field="points", max_points=cap)
    balance = (await _touch(session, [buyer_id], at))[buyer_id]
    if points > balance:
        raise NotEnoughPoints(f"you have {balance} points", field="points", balance=balance)
    await _entry(session, buyer_id, "redeem", -points, f"redeem:{order.id}", at, order_id=order.id)
    session.add(OrderDiscount(order_id=order.id, kind="points", amount=points, created_at=at))
    await session.flush()
    await coupons.recompute_total(session, order)
    return order


# --- the member's statement -------------------------------------------------------------

def entry_public(entry: MileageEntry) -> dict[str, Any]:
    return {"id": entry.id, "kind": entry.kind, "points": entry.points, "balance_after": entry.balance_after,
            "order_id": entry.order_id, "at": entry.created_at.isoformat(),
            "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
            "remaining": entry.remaining}


async def statement(session: AsyncSession, user_id: int, at: datetime) -> dict[str, Any]:
    """The balance (after expiring what is due) and the last movements, newest first."""
    balance = (await _touch(session, [user_id], at))[user_id]
    terms = await program(session)
    rows = await session.scalars(select(MileageEntry).where(MileageEntry.user_id == user_id)
                                 .order_by(MileageEntry.id.desc()).limit(HISTORY_ROWS))
    nxt = await session.execute(
        select(MileageEntry.expires_at, func.sum(MileageEntry.remaining))
        .where(MileageEntry.user_id == user_id, MileageEntry.remaining > 0)
        .group_by(MileageEntry.expires_at).order_by(MileageEntry.expires_at).limit(1))
    soonest = nxt.first()
    return {
        "balance": balance, "currency": terms.currency, "redeem_share_bp": terms.redeem_share_bp,
        "next_expiry": {"at": soonest[0].isoformat(), "points": int(soonest[1])} if soonest else None,
        "entries": [entry_public(e) for e in rows],
    }
