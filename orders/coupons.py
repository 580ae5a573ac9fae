"""Coupons: codes typed at checkout and vouchers the host pins in a show.

The admin, or a host for one of their shows, makes a voucher (`create_voucher`): a
percentage (basis points) or an amount off, in a currency, with a minimum spend, a
per-buyer and a total use limit, a scope (a show, an exhibition or a committee; none:
every order) and a validity window. The host pins a voucher in the show (`pin`);
viewers claim it with one tap (`claim`, kept in their wallet); checkout applies a
claimed voucher or a typed code to a pending order (`apply_coupon`).

A discount is a line of its own (`order_discounts`, kind `coupon` or `points`); the
order's `total` is goods + shipping + duties less its lines, never below 0
(`recompute_total`, also called by orders/checkout.py when the address changes the
shipping), so every payment provider charges, and every webhook is checked against,
the discounted figure. A discount can no longer change once payment has started.

**Exact under concurrency.** `vouchers.uses` is the number of orders the voucher is on.
A use is taken by one statement, `UPDATE vouchers SET uses = uses + 1 WHERE id = :id AND
uses < total_limit`: on PostgreSQL the row lock makes concurrent applies queue and each
re-reads the row after the one before it committed, so a voucher with 100 uses is used at
most 100 times whatever the number of processes (SQLite has one writer at a time); a
CHECK (`uses <= total_limit`) stands behind it. The per-buyer count is read after that
UPDATE, i.e. while this transaction holds the voucher's row lock, so two applies by one
buyer cannot both pass it; a refusal rolls the whole transaction back, taking nothing.
Locks are taken in one order — the order's row first, then the voucher's — as the
expiry sweep and cancellation do, so they cannot deadlock.

A use is given back (`release_uses`) when its order is cancelled or expires
(orders/lifecycle.py, orders/expiry.py); a refund keeps it used.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import Conflict, Forbidden, Invalid, NotFound
from orders.models import (
    Committee,
    Order,
    OrderDiscount,
    OrderStatus,
    Product,
    Role,
    Segment,
    Show,
    User,
    Voucher,
    VoucherClaim,
    VoucherKind,
    VoucherPin,
    VoucherUse,
)

CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{2,31}$")
MAX_AMOUNT = 10**13
MAX_USES = 1_000_000
LIST_ROWS = 200


class CouponUnknown(Invalid):
    code = "coupon_unknown"


class CouponNotStarted(Conflict):
    code = "coupon_not_started"


class CouponExpired(Conflict):
    code = "coupon_expired"


class CouponUsedUp(Conflict):
    code = "coupon_used_up"


class CouponBuyerLimit(Conflict):
    code = "coupon_buyer_limit"


class CouponMinSpend(Invalid):
    code = "coupon_min_spend"


class CouponNotApplicable(Invalid):
    """The voucher is for another show, exhibition or committee."""

    code = "coupon_not_applicable"


class CouponCurrency(Invalid):
    code = "coupon_currency"


class CouponAlreadyApplied(Conflict):
    code = "coupon_already_applied"


class CouponCodeTaken(Conflict):
    code = "coupon_code_taken"


class VoucherNotPinned(Conflict):
    code = "voucher_not_pinned"


class VoucherNotClaimed(Invalid):
    code = "voucher_not_claimed"


@dataclass(frozen=True)
class VoucherTerms:
    kind: VoucherKind
    currency: str
    total_limit: int
    starts_at: datetime
    ends_at: datetime
    percent_bp: int | None = None
    amount: int | None = None
    min_spend: int = 0
    per_buyer_limit: int = 1
    code: str | None = None  # None: one is made (an in-stream voucher)
    show_id: int | None = None
    exhibition_id: int | None = None
    committee: str | None = None  # a committee's code

    def check(self) -> None:
        if self.kind is VoucherKind.percent:
            if self.percent_bp is None or not 1 <= self.percent_bp <= 10000 or self.amount is not None:
                raise Invalid("a percent voucher takes percent_bp, 1 to 10000 (basis points)", field="percent_bp")
        elif self.amount is None or not 1 <= self.amount <= MAX_AMOUNT or self.percent_bp is not None:
            raise Invalid("an amount voucher takes amount, 1 or more minor units", field="amount")
        if not 0 <= self.min_spend <= MAX_AMOUNT:
            raise Invalid("min_spend is 0 or more minor units", field="min_spend")
        if not 1 <= self.total_limit <= MAX_USES:
            raise Invalid(f"total_limit is 1 to {MAX_USES}", field="total_limit")
        if not 1 <= self.per_buyer_limit <= self.total_limit:
            raise Invalid("per_buyer_limit is 1 to total_limit", field="per_buyer_limit")
        if self.ends_at <= self.starts_at:
            raise Invalid("ends_at must be after starts_at", field="ends_at")
        if sum(x is not None for x in (self.show_id, self.exhibition_id, self.committee)) > 1:
            raise Invalid("a voucher is for one show, one exhibition or one committee", field="show_id")
        if self.code is not None and not CODE.match(self.code.upper()):
            raise Invalid("a code is 3 to 32 letters, digits, - or _", field="code")


def voucher_public(voucher: Voucher, committee_code: str | None = None) -> dict[str, Any]:
    return {
        "id": voucher.id,
        "code": voucher.code,
        "kind": voucher.kind.value,
        "percent_bp": voucher.percent_bp,
        "amount": voucher.amount,
        "currency": voucher.currency,
        "min_spend": voucher.min_spend,
        "per_buyer_limit": voucher.per_buyer_limit,
        "total_limit": voucher.total_limit,
        "uses": voucher.uses,
        "left": voucher.total_limit - voucher.uses,
        "show_id": voucher.show_id,
        "exhibition_id": voucher.exhibition_id,
        "committee": committee_code,
        "starts_at": voucher.starts_at.isoformat(),
        "ends_at": voucher.ends_at.isoformat(),
    }


async def _committee_code(session: AsyncSession, committee_id: int | None) -> str | None:
    if committee_id is None:
        return None
    return await session.scalar(select(Committee.code).where(Committee.id == committee_id))


async def public(session: AsyncSession, voucher: Voucher) -> dict[str, Any]:
    return voucher_public(voucher, await _committee_code(session, voucher.committee_id))


async def create_voucher(session: AsyncSession, creator: User, terms: VoucherTerms, now: datetime) -> Voucher:
    """A new voucher. An admin may make any; a host only one for a show they host."""
    terms.check()
    if creator.role is not Role.admin:
        if creator.role is not Role.host or terms.show_id is None:
            raise Forbidden("a host makes vouchers for one of their shows (show_id)")
    if terms.show_id is not None:
        show = await session.get(Show, terms.show_id)
        if show is None:
            raise Invalid(f"no show {terms.show_id}", field="show_id")
        if creator.role is not Role.admin and show.host_id != creator.id:
            raise Forbidden("only the show's host or an admin makes its vouchers")
    committee_id = None
    if terms.committee is not None:
        committee_id = await session.scalar(select(Committee.id).where(Committee.code == terms.committee))
        if committee_id is None:
            raise Invalid(f"no committee {terms.committee!r}", field="committee")
    if terms.exhibition_id is not None:
        from orders.models import Exhibition

        if await session.get(Exhibition, terms.exhibition_id) is None:
            raise Invalid(f"no exhibition {terms.exhibition_id}", field="exhibition_id")
    code = terms.code.upper() if terms.code else f"V{secrets.token_hex(4).upper()}"
    if await session.scalar(select(Voucher.id).where(Voucher.code == code)) is not None:
        raise CouponCodeTaken(f"the code {code} is taken", field="code")
    voucher = Voucher(
        code=code, kind=terms.kind, percent_bp=terms.percent_bp, amount=terms.amount, currency=terms.currency,
        min_spend=terms.min_spend, per_buyer_limit=terms.per_buyer_limit, total_limit=terms.total_limit, uses=0,
        show_id=terms.show_id, exhibition_id=terms.exhibition_id, committee_id=committee_id,
        starts_at=terms.starts_at, ends_at=terms.ends_at, created_by=creator.id, created_at=now)
    session.add(voucher)
    await session.flush()
    return voucher


async def list_vouchers(session: AsyncSession, user: User, show_id: int | None = None) -> list[Voucher]:
    """An admin's: all (newest first); a host's: those they made or for the shows they host."""
    stmt = select(Voucher).order_by(Voucher.id.desc()).limit(LIST_ROWS)
    if show_id is not None:
        stmt = stmt.where(Voucher.show_id == show_id)
    if user.role is not Role.admin:
        hosted = select(Show.id).where(Show.host_id == user.id)
        stmt = stmt.where((Voucher.created_by == user.id) | Voucher.show_id.in_(hosted))
    return list(await session.scalars(stmt))


def check_window(voucher: Voucher, at: datetime) -> None:
    if at < voucher.starts_at:
        raise CouponNotStarted(f"this coupon is valid from {voucher.starts_at.isoformat()}",
                               starts_at=voucher.starts_at.isoformat())
    if at >= voucher.ends_at:
        raise CouponExpired("this coupon has expired", ends_at=voucher.ends_at.isoformat())


async def _show_fits(session: AsyncSession, voucher: Voucher, show: Show | None) -> bool:
    if voucher.show_id is not None:
        return show is not None and show.id == voucher.show_id
    if voucher.exhibition_id is not None:
        return show is not None and show.exhibition_id == voucher.exhibition_id
    if voucher.committee_id is not None:
        if show is None:
            return False
        found = await session.scalar(select(Segment.id).where(
            Segment.show_id == show.id, Segment.committee_id == voucher.committee_id).limit(1))
        return found is not None
    return True


# --- the show: pin, claim -----------------------------------------------------------

async def pin(session: AsyncSession, show: Show, voucher_id: int, at: datetime) -> dict[str, Any]:
    """Pin a voucher in the show (replacing the one pinned): one valid for this show."""
    voucher = await session.get(Voucher, voucher_id)
    if voucher is None:
        raise NotFound(f"no voucher {voucher_id}")
    if not await _show_fits(session, voucher, show):
        raise CouponNotApplicable("this voucher is not valid in this show", field="voucher_id")
    if at >= voucher.ends_at:
        raise CouponExpired("this voucher has expired", ends_at=voucher.ends_at.isoformat())
    current = await session.get(VoucherPin, show.id)
    if current is None:
        session.add(VoucherPin(show_id=show.id, voucher_id=voucher.id, pinned_at=at))
    else:
        current.voucher_id, current.pinned_at = voucher.id, at
    await session.flush()
    return await public(session, voucher)


async def unpin(session: AsyncSession, show_id: int) -> int | None:
    current = await session.get(VoucherPin, show_id)
    if current is None:
        return None
    voucher_id = current.voucher_id
    await session.delete(current)
    return voucher_id


async def pinned(session: AsyncSession, show_id: int) -> dict[str, Any] | None:
    current = await session.get(VoucherPin, show_id)
    if current is None:
        return None
    voucher = await session.get(Voucher, current.voucher_id)
    return None if voucher is None else await public(session, voucher)


async def claim(session: AsyncSession, show_id: int, voucher_id: int, user_id: int, at: datetime
                ) -> dict[str, Any]:
    """Keep the voucher pinned in this show for the user's checkout (twice is once)."""
    current = await session.get(VoucherPin, show_id)
    if current is None or current.voucher_id != voucher_id:
        raise VoucherNotPinned("this voucher is not pinned in this show", field="voucher_id")
    voucher = await session.get(Voucher, voucher_id)
    assert voucher is not None
    check_window(voucher, at)
    if voucher.uses >= voucher.total_limit:
        raise CouponUsedUp("this voucher is used up")
    exists = await session.scalar(select(VoucherClaim.id).where(
        VoucherClaim.voucher_id == voucher_id, VoucherClaim.user_id == user_id))
    if exists is None:
        session.add(VoucherClaim(voucher_id=voucher_id, user_id=user_id, show_id=show_id, claimed_at=at))
        await session.flush()
    return await public(session, voucher)


async def wallet(session: AsyncSession, user_id: int, at: datetime) -> list[dict[str, Any]]:
    """The user's claimed vouchers that can still be used (in their window, uses left)."""
    rows = await session.scalars(
        select(Voucher).join(VoucherClaim, VoucherClaim.voucher_id == Voucher.id)
        .where(VoucherClaim.user_id == user_id, Voucher.ends_at > at, Voucher.uses < Voucher.total_limit)
        .order_by(VoucherClaim.id.desc()).limit(LIST_ROWS))
    return [await public(session, v) for v in rows]


# --- checkout: apply, recompute, give back ------------------------------------------

def discount_for(voucher: Voucher, goods: int) -> int:
    """What the voucher takes off goods worth `goods`: a percentage rounded down, or the
    amount — never more than the goods."""
    if voucher.kind is VoucherKind.percent:
        assert voucher.percent_bp is not None
        return goods * voucher.percent_bp // 10000
    assert voucher.amount is not None
    return min(voucher.amount, goods)


async def lock_pending(session: AsyncSession, order_id: int, buyer_id: int, at: datetime) -> Order:
    """The buyer's order, pending, its hold not over, payment not started — and its row
    locked for this transaction (a no-op UPDATE; on SQLite: the write lock), the first
    lock every discount takes. Refusals as checkout's (orders/checkout.py)."""
    from orders.checkout import OrderExpired, PaymentStarted
    from orders.lifecycle import IllegalTransition

    order = await session.get(Order, order_id)
    if order is None or order.buyer_id != buyer_id:
        raise NotFound(f"no order {order_id}")
    done = await session.execute(
        update(Order).where(Order.id == order_id, Order.status == OrderStatus.pending,
                            Order.payment_ref.is_(None)).values(updated_at=at)
        .execution_options(synchronize_session=False))
    await session.refresh(order)
    if done.rowcount != 1:
        if order.status is not OrderStatus.pending:
            raise IllegalTransition(f"an order that is {order.status.value} takes no discount",
                                    current_status=order.status.value)
        raise PaymentStarted("payment has started for this order: its total can no longer change",
                             payment_provider=order.payment_provider or "")
    if order.expires_at is not None and order.expires_at <= at:
        raise OrderExpired("the hold on this order has ended; place it again",
                           expires_at=order.expires_at.isoformat())
    return order


async def discount_total(session: AsyncSession, order_id: int) -> int:
    return int(await session.scalar(
        select(func.coalesce(func.sum(OrderDiscount.amount), 0)).where(OrderDiscount.order_id == order_id)) or 0)


async def discounts_of(session: AsyncSession, order_ids: Collection[int]) -> dict[int, dict[str, Any]]:
    """{order id: {coupon: {amount, code} | None, points: amount | None}} for orders with a line."""
    if not order_ids:
        return {}
    rows = await session.execute(
        select(OrderDiscount.order_id, OrderDiscount.kind, OrderDiscount.amount, Voucher.code)
        .outerjoin(Voucher, Voucher.id == OrderDiscount.voucher_id)
        .where(OrderDiscount.order_id.in_(order_ids)))
    found: dict[int, dict[str, Any]] = {}
    for order_id, kind, amount, code in rows.all():
        entry = found.setdefault(order_id, {"coupon": None, "points": None})
        if kind == "coupon":
            entry["coupon"] = {"amount": amount, "code": code}
        else:
            entry["points"] = amount
    return found


def payable_total(order: Order, discounts: int) -> int:
    goods = order.unit_price * order.quantity
    return max(0, goods + (order.shipping_amount or 0) + (order.duties_amount or 0) - discounts)


async def recompute_total(session: AsyncSession, order: Order) -> int:
    """Set the order's total to goods + shipping + duties less its discount lines (≥ 0)."""
    total = payable_total(order, await discount_total(session, order.id))
    await session.execute(update(Order).where(Order.id == order.id).values(total=total)
                          .execution_options(synchronize_session=False))
    await session.refresh(order)
    return total


async def apply_coupon(session: AsyncSession, order_id: int, buyer_id: int, at: datetime, *,
                       code: str | None = None, voucher_id: int | None = None) -> Order:
    """Apply a typed code, or a voucher the buyer claimed, to their pending order.
    Each refusal has its code and takes nothing (the caller's transaction rolls back)."""
    order = await lock_pending(session, order_id, buyer_id, at)
    if code is not None:
        voucher = await session.scalar(select(Voucher).where(Voucher.code == code.strip().upper()))
        if voucher is None:
            raise CouponUnknown("no coupon with this code", field="code")
    else:
        voucher = await session.get(Voucher, voucher_id) if voucher_id is not None else None
        claimed = voucher is not None and await session.scalar(select(VoucherClaim.id).where(
            VoucherClaim.voucher_id == voucher.id, VoucherClaim.user_id == buyer_id))
        if voucher is None or not claimed:
            raise VoucherNotClaimed("claim this voucher in the show first", field="voucher_id")
    if await session.scalar(select(OrderDiscount.id).where(
            OrderDiscount.order_id == order.id, OrderDiscount.kind == "coupon")) is not None:
        raise CouponAlreadyApplied("this order already has a coupon")
    check_window(voucher, at)
    if voucher.currency != order.currency:
        raise CouponCurrency(f"this coupon is for orders in {voucher.currency}", currency=voucher.currency)
    show = await session.get(Show, order.show_id) if order.show_id is not None else None
    if voucher.committee_id is not None and voucher.show_id is None:
        committee_id = order.committee_id or await session.scalar(
            select(Product.committee_id).where(Product.id == order.product_id))
        fits = committee_id == voucher.committee_id
    else:
        fits = await _show_fits(session, voucher, show)
    if not fits:
        raise CouponNotApplicable("this coupon is for another show, exhibition or committee")
    goods = order.unit_price * order.quantity
    if goods < voucher.min_spend:
        raise CouponMinSpend(f"this coupon needs a spend of at least {voucher.min_spend} {voucher.currency}",
                             min_spend=voucher.min_spend, currency=voucher.currency)
    # The use: one conditional UPDATE, exact across processes (see the module's docstring).
    taken = await session.execute(
        update(Voucher).where(Voucher.id == voucher.id, Voucher.uses < Voucher.total_limit)
        .values(uses=Voucher.uses + 1).execution_options(synchronize_session=False))
    if taken.rowcount != 1:
        raise CouponUsedUp("this coupon is used up")
    # Read under the voucher's row lock: one buyer's concurrent applies queue here.
    used = await session.scalar(select(func.count(VoucherUse.id)).where(
        VoucherUse.voucher_id == voucher.id, VoucherUse.buyer_id == buyer_id, VoucherUse.released_at.is_(None)))
    if used >= voucher.per_buyer_limit:
        raise CouponBuyerLimit(f"you have used this coupon {used} times, its limit",
                               limit=voucher.per_buyer_limit, used=used)
    amount = discount_for(voucher, goods)
    session.add(VoucherUse(voucher_id=voucher.id, buyer_id=buyer_id, order_id=order.id, amount=amount,
                           created_at=at))
    session.add(OrderDiscount(order_id=order.id, kind="coupon", amount=amount, voucher_id=voucher.id,
                              created_at=at))
    await session.flush()
    await recompute_total(session, order)
    return order


async def release_uses(session: AsyncSession, order_ids: Collection[int], at: datetime) -> None:
    """Give back the voucher uses of these orders (cancelled or expired), once each."""
    if not order_ids:
        return
    released = (await session.execute(
        update(VoucherUse).where(VoucherUse.order_id.in_(order_ids), VoucherUse.released_at.is_(None))
        .values(released_at=at).returning(VoucherUse.voucher_id)
        .execution_options(synchronize_session=False))).scalars().all()
    counts: dict[int, int] = {}
    for voucher_id in released:
        counts[voucher_id] = counts.get(voucher_id, 0) + 1
    for voucher_id in sorted(counts):  # one lock order for everyone
        await session.execute(update(Voucher).where(Voucher.id == voucher_id)
                              .values(uses=Voucher.uses - counts[voucher_id])
                              .execution_options(synchronize_session=False))
