"""E-mail notifications: a queue in the database, written with the event it tells of.

An event (an order placed, paid or shipped, a quote answered, a password reset asked
for, a show someone asked to be reminded of going live) adds a `mail_queue` row **in
the transaction that makes the event**: an order rolled back leaves no mail, and no
request waits for an SMTP server. `web/notifier.py` sends the rows later.

At most once per event: each row has a unique `event_key` (`order-paid:42`), inserted
with ON CONFLICT DO NOTHING, so a replayed webhook or a retried request adds nothing.
A worker claims due rows with a lease (`claimed_by`, `claimed_until`; on PostgreSQL the
claim skips rows another worker has locked, `FOR UPDATE SKIP LOCKED`), sends, and marks
the row `sent` only if its claim still holds; a row marked sent is never claimed again.
The one gap no SMTP client closes: a worker that dies after the server took a mail and
before it marked the row sees it sent again once its lease runs out (the mail keeps its
Message-ID, so the recipient's mail client can tell).

The order's "about to expire" warning is queued by the expiry sweeper once the hold has
`EXPIRY_WARNING` left (`orders_expiring`, orders/expiry.py); when it is sent, `context`
drops it if the order is no longer pending, and postpones it if the hold was moved.

What the mail says is read when it is sent (`context`: plain facts for the text in
web/mail_texts.py), in the recipient's language (`language_of`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, any_, bindparam, cast, delete, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orders.db import Database
from orders.errors import Conflict, NotFound
from orders.models import (
    MailQueue,
    MailStatus,
    Order,
    OrderStatus,
    Product,
    Quote,
    Show,
    ShowReminder,
    ShowStatus,
    User,
    UserLanguage,
)
from orders.shipping import tracking_public

EXPIRY_WARNING = timedelta(minutes=10)  # the "about to expire" mail comes this long before the hold ends
LANGUAGES = ("en", "ko", "ru", "zh-Hans", "vi")  # the pages' languages (web/pages.py LOCALES)

ORDER_PLACED = "order-placed"
ORDER_EXPIRING = "order-expiring"
ORDER_PAID = "order-paid"
ORDER_SHIPPED = "order-shipped"
QUOTE_ANSWERED = "quote-answered"
PASSWORD_RESET = "password-reset"
SHOW_LIVE = "show-live"
KINDS = (ORDER_PLACED, ORDER_EXPIRING, ORDER_PAID, ORDER_SHIPPED, QUOTE_ANSWERED, PASSWORD_RESET, SHOW_LIVE)


class ShowNotScheduled(Conflict):
    code = "show_not_scheduled"


# --- enqueueing (in the event's transaction) -------------------------------------------

def _insert(session: AsyncSession, model: type = MailQueue):
    """INSERT with ON CONFLICT, which both dialects have and SQLAlchemy spells per dialect."""
    return (sqlite.insert if session.bind.dialect.name == "sqlite" else postgresql.insert)(model)


async def enqueue(session: AsyncSession, kind: str, event_key: str, user_id: int, now: datetime, *,
                  due_at: datetime | None = None, params: dict[str, Any] | None = None,
                  language: str | None = None) -> bool:
    """Queue one mail in `session`'s transaction; False if this event already has one."""
    done = await session.execute(
        _insert(session).values(event_key=event_key, kind=kind, user_id=user_id, language=language, params=params,
                                status=MailStatus.queued, due_at=due_at or now, attempts=0, created_at=now)
        .on_conflict_do_nothing(index_elements=["event_key"])
    )
    return done.rowcount == 1


def _order_rows(session: AsyncSession, kind: str, ids: list[int], now: datetime):
    """SELECT the queue rows of `kind` for these orders (for INSERT … SELECT). On
    PostgreSQL the ids go as one array (`= ANY(:ids)`), as the order desk sends its
    batch, not as `IN (:id1, …, :id250)`: one statement to prepare whatever the size."""
    o = Order.__table__.c
    when = o.created_at.type
    if session.bind.dialect.name == "sqlite":
        chosen = o.id.in_(ids)
    else:
        chosen = o.id == any_(bindparam("order_ids", ids, type_=postgresql.ARRAY(Integer)))
    return select(literal(f"{kind}:", String) + cast(o.id, String), literal(kind, String), o.buyer_id,
                  literal(MailStatus.queued.value, String), literal(now, when), literal(0, Integer),
                  literal(now, when)).where(chosen)


_ROW_COLUMNS = ["event_key", "kind", "user_id", "status", "due_at", "attempts", "created_at"]


async def orders_placed(session: AsyncSession, order_ids: Sequence[int], now: datetime) -> None:
    """"Order placed" for these new orders: one INSERT … SELECT whatever the batch's size
    (the flash sale's order desk calls this in its batch transaction). 250 orders' rows
    took a median 10 ms on the shared 2-core machine at load ~7 (20–60 ms when the
    expiry warnings were written too: those are queued by the expiry sweeper instead,
    `orders_expiring`)."""
    if order_ids:
        await session.execute(_insert(session).from_select(_ROW_COLUMNS, _order_rows(session, ORDER_PLACED,
                                                                                     list(order_ids), now))
                              .on_conflict_do_nothing())


async def forget_orders_placed(session: AsyncSession, order_ids: Sequence[int]) -> None:
    """Take back the "order placed" mails of orders deleted in the same transaction."""
    await session.execute(delete(MailQueue).where(MailQueue.event_key.in_([f"{ORDER_PLACED}:{i}" for i in order_ids])))


async def orders_expiring(session: AsyncSession, now: datetime) -> int:
    """The "about to expire" warning of every pending order whose hold ends within
    `EXPIRY_WARNING` and has none yet (the expiry sweeper calls this each sweep, so it
    comes at most a sweep late; several sweepers queue it once, by its key). Holds no
    longer than the lead get none: their "order placed" mail already says when."""
    o = Order.__table__.c
    warned = select(MailQueue.id).where(MailQueue.event_key == literal(f"{ORDER_EXPIRING}:", String)
                                        + cast(o.id, String)).exists()
    due = (await session.execute(
        select(o.id, o.created_at, o.expires_at)
        .where(o.status == OrderStatus.pending, o.expires_at > now, o.expires_at <= now + EXPIRY_WARNING,
               ~warned))).all()
    ids = [order_id for order_id, created_at, expires_at in due if expires_at - created_at > EXPIRY_WARNING]
    if ids:
        await session.execute(_insert(session).from_select(_ROW_COLUMNS, _order_rows(session, ORDER_EXPIRING, ids, now))
                              .on_conflict_do_nothing())
    return len(ids)


async def order_placed(session: AsyncSession, order: Order, now: datetime) -> None:
    await session.flush()
    await orders_placed(session, [order.id], now)


async def order_paid(session: AsyncSession, order: Order, now: datetime) -> None:
    await enqueue(session, ORDER_PAID, f"{ORDER_PAID}:{order.id}", order.buyer_id, now)


async def order_shipped(session: AsyncSession, order: Order, now: datetime) -> None:
    await enqueue(session, ORDER_SHIPPED, f"{ORDER_SHIPPED}:{order.id}", order.buyer_id, now)


async def quote_answered(session: AsyncSession, quote: Quote, now: datetime) -> None:
    """Each answer is an event (a revised price is worth a mail): the key has its time.
    The mail says the price of that answer, even if another follows."""
    assert quote.answered_at is not None and quote.valid_until is not None
    stamp = int(quote.answered_at.timestamp() * 1_000_000)
    await enqueue(session, QUOTE_ANSWERED, f"{QUOTE_ANSWERED}:{quote.id}:{stamp}", quote.buyer_id, now,
                  params={"unit_price": quote.unit_price, "currency": quote.currency,
                          "valid_until": quote.valid_until.isoformat()})


async def password_reset(session: AsyncSession, user_id: int, link: str, ttl_seconds: int, language: str | None,
                         now: datetime) -> None:
    """The reset link is kept only until the mail is sent (then `params` are cleared)."""
    await enqueue(session, PASSWORD_RESET, f"{PASSWORD_RESET}:{user_id}:{uuid.uuid4().hex}", user_id, now,
                  params={"link": link, "ttl_seconds": ttl_seconds}, language=language)


# --- "Remind me" on scheduled shows ------------------------------------------------------

async def remind(session: AsyncSession, show_id: int, user_id: int, now: datetime) -> None:
    """Ask for a mail when the show goes live. Only for a scheduled show; twice is once."""
    show = await session.get(Show, show_id)
    if show is None:
        raise NotFound(f"no show {show_id}")
    if show.status is not ShowStatus.scheduled:
        raise ShowNotScheduled(f"the show is {show.status.value}: reminders are for scheduled shows",
                               show_status=show.status.value)
    await session.execute(_insert(session, ShowReminder).values(show_id=show_id, user_id=user_id, created_at=now)
                          .on_conflict_do_nothing(index_elements=["show_id", "user_id"]))


async def forget_reminder(session: AsyncSession, show_id: int, user_id: int) -> None:
    await session.execute(delete(ShowReminder).where(ShowReminder.show_id == show_id,
                                                     ShowReminder.user_id == user_id))


async def reminded_show_ids(session: AsyncSession, user_id: int) -> set[int]:
    return set(await session.scalars(select(ShowReminder.show_id).where(ShowReminder.user_id == user_id,
                                                                        ShowReminder.notified_at.is_(None))))


async def show_live(session: AsyncSession, show_id: int, now: datetime) -> int:
    """One mail per reminder not yet served; each reminder is served once."""
    users = list(await session.scalars(
        update(ShowReminder).where(ShowReminder.show_id == show_id, ShowReminder.notified_at.is_(None))
        .values(notified_at=now).returning(ShowReminder.user_id)
        .execution_options(synchronize_session=False)))
    for user_id in users:
        await enqueue(session, SHOW_LIVE, f"{SHOW_LIVE}:{show_id}:{user_id}", user_id, now)
    return len(users)


# --- the recipient's language ----------------------------------------------------------

def default_language(country: str | None) -> str:
    return "ko" if (country or "").upper() == "KR" else "en"


async def set_language(session: AsyncSession, user_id: int, language: str, now: datetime) -> None:
    if language not in LANGUAGES:
        return
    await session.execute(_insert(session, UserLanguage).values(user_id=user_id, language=language, updated_at=now)
                          .on_conflict_do_update(index_elements=["user_id"],
                                                 set_={"language": language, "updated_at": now}))


async def language_of(session: AsyncSession, user: User) -> str:
    """The account's language if stored, else Korean for accounts in Korea, else English."""
    stored = await session.scalar(select(UserLanguage.language).where(UserLanguage.user_id == user.id))
    return stored if stored in LANGUAGES else default_language(user.country)


# --- the worker's side ---------------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    id: int
    event_key: str
    kind: str
    user_id: int
    language: str | None
    params: dict[str, Any]
    attempts: int  # including this one
    created_at: datetime


async def claim(db: Database, worker: str, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
    """Take up to `limit` due rows for `worker` until `now + lease`. Two workers never
    hold one row: on PostgreSQL the candidates are locked with SKIP LOCKED (a worker
    passes over rows another is claiming instead of waiting for them), and the UPDATE
    re-checks that the row is still unclaimed; SQLite has one writer at a time.

    On PostgreSQL two statements, not `UPDATE … WHERE id IN (SELECT … LIMIT n FOR
    UPDATE SKIP LOCKED)`: the server may run such a subquery again for each row it
    updates, and then claims every due row, not n (seen here: one worker took all 20
    of 20, the other none). On SQLite one statement, so the claim takes the write lock
    at once instead of upgrading a read (which fails if an order committed between)."""
    free = or_(MailQueue.claimed_until.is_(None), MailQueue.claimed_until <= now)
    due = (MailQueue.status == MailStatus.queued) & (MailQueue.due_at <= now) & free
    async with db.transaction() as session:
        candidates = select(MailQueue.id).where(due).order_by(MailQueue.due_at, MailQueue.id).limit(limit)
        if db.is_sqlite:
            chosen: Any = candidates.scalar_subquery()
        else:
            chosen = list(await session.scalars(candidates.with_for_update(skip_locked=True)))
            if not chosen:
                return []
        rows = (await session.execute(
            update(MailQueue).where(MailQueue.id.in_(chosen), due)
            .values(claimed_by=worker, claimed_until=now + lease, attempts=MailQueue.attempts + 1)
            .returning(MailQueue.id, MailQueue.event_key, MailQueue.kind, MailQueue.user_id, MailQueue.language,
                       MailQueue.params, MailQueue.attempts, MailQueue.created_at)
            .execution_options(synchronize_session=False)
        )).all()
    return sorted((Claimed(r.id, r.event_key, r.kind, r.user_id, r.language, r.params or {}, r.attempts,
                           r.created_at) for r in rows), key=lambda c: c.id)


async def _finish(db: Database, mail_id: int, worker: str, **values: Any) -> bool:
    """Update a row this worker still holds; False if its claim was lost meanwhile."""
    async with db.transaction() as session:
        done = await session.execute(
            update(MailQueue).where(MailQueue.id == mail_id, MailQueue.claimed_by == worker,
                                    MailQueue.status == MailStatus.queued)
            .values(claimed_by=None, claimed_until=None, **values)
            .execution_options(synchronize_session=False))
    return done.rowcount == 1


async def mark_sent(db: Database, mail: Claimed, worker: str, now: datetime) -> bool:
    values: dict[str, Any] = {"status": MailStatus.sent, "sent_at": now, "last_error": None}
    if mail.kind == PASSWORD_RESET:
        values["params"] = None  # the link is a credential: not kept once it has gone out
    return await _finish(db, mail.id, worker, **values)


async def mark_retry(db: Database, mail: Claimed, worker: str, at: datetime, error: str) -> bool:
    return await _finish(db, mail.id, worker, due_at=at, last_error=error[:200])


async def mark_failed(db: Database, mail: Claimed, worker: str, error: str) -> bool:
    return await _finish(db, mail.id, worker, status=MailStatus.failed, last_error=error[:200])


async def mark_dropped(db: Database, mail: Claimed, worker: str, reason: str) -> bool:
    values: dict[str, Any] = {"status": MailStatus.dropped, "last_error": reason[:200]}
    if mail.kind == PASSWORD_RESET:
        values["params"] = None
    return await _finish(db, mail.id, worker, **values)


async def postpone(db: Database, mail: Claimed, worker: str, at: datetime) -> bool:
    """Due later after all (a moved hold): not an attempt."""
    async with db.transaction() as session:
        done = await session.execute(
            update(MailQueue).where(MailQueue.id == mail.id, MailQueue.claimed_by == worker)
            .values(claimed_by=None, claimed_until=None, due_at=at, attempts=MailQueue.attempts - 1)
            .execution_options(synchronize_session=False))
    return done.rowcount == 1


@dataclass(frozen=True)
class Drop:
    reason: str


@dataclass(frozen=True)
class Later:
    at: datetime


async def context(db: Database, mail: Claimed, now: datetime) -> dict[str, Any] | Drop | Later:
    """The facts the mail's text needs, read now; Drop if the event no longer calls for
    it (the warning of an order already paid), Later if it is not due yet after all."""
    async with db.session() as session:
        user = await session.get(User, mail.user_id)
        if user is None:
            return Drop("no such user")
        facts: dict[str, Any] = {
            "to": user.email, "name": user.name, "country": user.country,
            "language": mail.language if mail.language in LANGUAGES else await language_of(session, user),
            **mail.params,
        }
        if mail.kind in (ORDER_PLACED, ORDER_EXPIRING, ORDER_PAID, ORDER_SHIPPED):
            order = await session.get(Order, int(mail.event_key.split(":")[1]))
            if order is None:
                return Drop("no such order")
            if mail.kind == ORDER_EXPIRING:
                if order.status is not OrderStatus.pending or order.expires_at is None or order.expires_at <= now:
                    return Drop(f"the order is {order.status.value}")
                if order.expires_at - EXPIRY_WARNING > now:
                    return Later(order.expires_at - EXPIRY_WARNING)
                facts["minutes_left"] = max(1, -(-int((order.expires_at - now).total_seconds()) // 60))
            product = await session.get(Product, order.product_id)
            facts.update(order_id=order.id, product=product.name if product else "", quantity=order.quantity,
                         total=order.total, currency=order.currency, expires_at=order.expires_at,
                         tracking=tracking_public(order.carrier, order.tracking_number))
        elif mail.kind == QUOTE_ANSWERED:
            quote = await session.get(Quote, int(mail.event_key.split(":")[1]))
            if quote is None:
                return Drop("no such quote")
            product = await session.get(Product, quote.product_id)
            facts.update(quote_id=quote.id, product=product.name if product else "", quantity=quote.quantity,
                         valid_until=datetime.fromisoformat(mail.params["valid_until"]))
        elif mail.kind == SHOW_LIVE:
            show = await session.get(Show, int(mail.event_key.split(":")[1]))
            if show is None:
                return Drop("no such show")
            if show.status is ShowStatus.ended:
                return Drop("the show has ended")
            facts.update(show_id=show.id, title=show.title)
        elif mail.kind == PASSWORD_RESET:
            if "link" not in mail.params:
                return Drop("no link")
        else:
            return Drop(f"unknown kind {mail.kind}")
    return facts


async def queued(db: Database, keys: Iterable[str] | None = None) -> list[MailQueue]:
    """The queue's rows (all, or these events'), oldest first: for tests and operators."""
    async with db.session() as session:
        stmt = select(MailQueue).order_by(MailQueue.id)
        if keys is not None:
            stmt = stmt.where(MailQueue.event_key.in_(list(keys)))
        return list(await session.scalars(stmt))
