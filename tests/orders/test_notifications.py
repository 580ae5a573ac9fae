"""E-mail notifications (issue 15, item 6), against a real SMTP server (aiosmtpd) on
loopback: each event makes exactly one mail in its recipient's language; a rolled-back
event makes none; a server down, refusing or too slow leaves the mail queued until it
takes it; two workers never send one row twice; the expiry warning goes out once, ten
minutes before the hold ends.

Tests that follow the clock drive a `Notifier` of their own (`run_once` at chosen
times) on an app that sends nothing itself (no SMTP host); the others let the app's
worker do it, with poll and back-off intervals cut to tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import queue
import re
import shutil
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from orders import notifications
from orders.db import Database
from orders.demo import load_demo
from orders.expiry import Sweeper
from orders.lifecycle import move
from orders.models import MailQueue, MailStatus, OrderStatus, ShowViewer, User, utcnow
from orders.shows import mark_live
from tests.conftest import fresh_sqlite, free_port, test_settings
from tests.orders.conftest import BUYER, HOST, MASK_LINE, MEMBER, WEBHOOK_SECRET, Shop, WatchedEvents, open_shop
from web.app import create_app
from web.appkeys import EVENTS
from web.mail import SmtpMailer
from web.notifier import Notifier
from web.pages import LOCALES, load_translations

FAST = dict(mail_poll_interval=0.02, mail_retry_base=0.05, mail_retry_max=0.2)


class Inbox:
    """A real SMTP server on a free loopback port. `refuse` answers the next DATA
    commands with 554, `stall` waits past the client's timeout and answers 451:
    neither keeps the message. `stop()`/`start()` take the server down and up."""

    def __init__(self, port: int | None = None) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.port = port or free_port()
        self.refuse = 0
        self.stall = 0
        self.stall_seconds = 1.0
        self.delay = 0.0  # seconds each accepted message takes
        self.controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's handler hook
        if self.refuse:
            self.refuse -= 1
            return "554 5.3.0 refused for the test"
        if self.stall:
            self.stall -= 1
            await asyncio.sleep(self.stall_seconds)
            return "451 4.3.0 too slow for the test"
        await asyncio.sleep(self.delay)
        self.messages.put(message_from_bytes(envelope.original_content, policy=policy.default))  # headers decoded
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    async def next(self, timeout: float = 10) -> Message:
        return await asyncio.to_thread(self.messages.get, True, timeout)

    def drain(self) -> list[Message]:
        taken = []
        while not self.messages.empty():
            taken.append(self.messages.get_nowait())
        return taken


def body_of(message: Message) -> str:
    return message.get_content()


@pytest.fixture
def inbox():
    box = Inbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def demo_template(sqlite_template: Path, tmp_path_factory) -> Path:
    """The migrated database with the demo shop loaded, once per module (the demo's
    password hashing is most of a shop's start-up); each test gets a copy."""
    path = tmp_path_factory.mktemp("mail") / "demo.db"
    shutil.copy(sqlite_template, path)

    async def load() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        async with db.transaction() as session:
            await load_demo(session)
            session.add_all(ShowViewer(show_id=1, viewer_key=f"u{u}", user_id=u) for u in (1, 2, 3, 4))
        await db.close()

    asyncio.run(load())
    return path


@pytest.fixture
def shop_url(demo_template: Path, tmp_path: Path) -> str:
    return fresh_sqlite(demo_template, tmp_path)


async def shop_at(aiohttp_client, url: str, tmp_path: Path, **overrides) -> Shop:
    """The shop of tests/orders/conftest.py on an already loaded database."""
    settings = dict(payment_sandbox=True, payment_webhook_secret=WEBHOOK_SECRET, recordings_dir=tmp_path / "rec",
                    public_url="http://shop.example")
    app = create_app(test_settings(url, **{**settings, **overrides}))
    events = WatchedEvents()
    app[EVENTS] = events
    return Shop(await aiohttp_client(app), events)


async def mail_shop(aiohttp_client, url: str, tmp_path: Path, inbox: Inbox, **overrides) -> Shop:
    """The shop whose own worker sends to `inbox`."""
    return await shop_at(aiohttp_client, url, tmp_path, smtp_host="127.0.0.1", smtp_port=inbox.port,
                         mail_from="livemall <no-reply@shop.example>", **{**FAST, **overrides})


@pytest.fixture
async def shop(aiohttp_client, shop_url, tmp_path, inbox) -> Shop:
    return await mail_shop(aiohttp_client, shop_url, tmp_path, inbox)


async def rows(db: Database, prefix: str = "") -> list[MailQueue]:
    return [row for row in await notifications.queued(db) if row.event_key.startswith(prefix)]


async def settled(db: Database, key: str, timeout: float = 10) -> MailQueue:
    """The row once it is no longer queued (the worker sent, dropped or gave it up)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await notifications.queued(db, [key])
        if found and found[0].status is not MailStatus.queued:
            return found[0]
        assert asyncio.get_running_loop().time() < deadline, f"{key} still queued: {found}"
        await asyncio.sleep(0.02)


async def only_mail(shop: Shop, inbox: Inbox, key: str) -> Message:
    """The one mail of event `key`: received, its row marked sent, and nothing else came."""
    message = await inbox.next()
    row = await settled(shop.db, key)
    assert row.status is MailStatus.sent and row.attempts == 1
    await asyncio.sleep(0.1)  # several more polls of the worker
    assert inbox.drain() == []
    return message


# --- each event, once, in the recipient's language ------------------------------------------

async def test_an_order_mails_its_buyer_once_with_the_pay_by_time_in_their_zone_and_utc(shop, inbox):
    order = await shop.placed(quantity=2)

    message = await only_mail(shop, inbox, f"order-placed:{order['id']}")

    assert message["To"] == "buyer@livemall.example"
    assert message["Subject"] == f"Order #{order['id']} is reserved for you"
    body = body_of(message)
    expires = datetime.fromisoformat(order["expires_at"])
    # The buyer is in China (one zone): the local time with its offset, and UTC beside it.
    local = expires.astimezone(timezone(timedelta(hours=8)))
    assert f"Please pay by {local:%b} {local.day}, {local.year}, {local:%-I:%M}" in body
    assert f"GMT+08:00 ({expires:%b} {expires.day}, {expires.year}, {expires:%-I:%M}" in body and " UTC)" in body
    assert "2 × Jeju Organic Green Tea 100g, $30.00" in body  # 1500 ×2, USD
    assert f"http://shop.example/orders/{order['id']}" in body
    assert await rows(shop.db, "order-expiring:") == []  # the sweeper queues it when its time comes


@pytest.mark.parametrize(("accept_language", "subject"), [
    ("ko-KR", "주문 #{id}이(가) 예약되었습니다"),
    ("en-US", "Order #{id} is reserved for you"),
    ("ru-RU", "Заказ №{id} зарезервирован для вас"),
    ("zh-CN", "订单 #{id} 已为你保留"),
    ("vi-VN", "Đơn hàng #{id} đã được giữ cho bạn"),
])
async def test_a_mail_is_in_the_language_the_account_registered_in(shop, inbox, accept_language, subject):
    registered = await shop.client.post(
        "/api/auth/register", headers={"Accept-Language": accept_language},
        json={"email": "olga@example.com", "password": "maple-harbour-9", "name": "Olga", "country": "US"})
    assert registered.status == 201, await registered.text()
    shop.tokens["olga"] = (await (await shop.client.post(
        "/api/auth/login", json={"email": "olga@example.com", "password": "maple-harbour-9"})).json())["token"]
    order = await shop.placed("olga")

    message = await only_mail(shop, inbox, f"order-placed:{order['id']}")

    assert message["Subject"] == subject.format(id=order["id"])


async def test_an_account_without_a_language_gets_korean_in_korea_and_english_elsewhere(shop, inbox):
    async with shop.db.session() as session:
        host, member = await session.get(User, HOST), await session.get(User, MEMBER)
        assert (await notifications.language_of(session, host), await notifications.language_of(session, member)) \
            == ("ko", "en")


async def test_a_payment_mails_the_buyer_once(shop, inbox):
    order = await shop.placed()
    await only_mail(shop, inbox, f"order-placed:{order['id']}")

    paid = await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")
    assert paid.status == 200, await paid.text()

    message = await only_mail(shop, inbox, f"order-paid:{order['id']}")
    assert message["Subject"] == f"Payment received for order #{order['id']}"
    assert "We received $15.00 for your order" in body_of(message)


async def test_shipping_mails_the_carrier_the_number_and_the_tracking_link(shop, inbox):
    order = await shop.placed()
    await only_mail(shop, inbox, f"order-placed:{order['id']}")
    await shop.post(f"/api/orders/{order['id']}/confirm-payment", "admin")
    await only_mail(shop, inbox, f"order-paid:{order['id']}")

    shipped = await shop.post(f"/api/orders/{order['id']}/ship", "admin",
                              {"carrier": "DHL", "tracking_number": "JD0123456789"})
    assert shipped.status == 200, await shipped.text()

    body = body_of(await only_mail(shop, inbox, f"order-shipped:{order['id']}"))
    assert "Carrier: DHL Express" in body and "Tracking number: JD0123456789" in body
    assert "tracking-id=JD0123456789" in body


async def test_an_answered_quote_mails_its_buyer_the_price_and_validity(shop, inbox):
    asked = await shop.post("/api/quotes", "buyer", {"product_id": MASK_LINE, "quantity": 2,
                                                     "destination_country": "CN", "incoterm": "DAP", "note": ""})
    assert asked.status == 201, await asked.text()
    quote_id = (await asked.json())["id"]

    answered = await shop.post(f"/api/quotes/{quote_id}/answer", "admin", {"unit_price": 500000, "valid_days": 7})
    assert answered.status == 200, await answered.text()

    [row] = await rows(shop.db, f"quote-answered:{quote_id}:")
    message = await only_mail(shop, inbox, row.event_key)
    assert message["Subject"] == f"Your quote #{quote_id} has an answer"
    assert "2 × " in body_of(message) and "valid until" in body_of(message)


async def test_remind_me_mails_once_when_the_show_goes_live(shop, inbox):
    show_id = await scheduled_show(shop)
    reminded = await shop.post(f"/api/shows/{show_id}/remind", "buyer")
    again = await shop.post(f"/api/shows/{show_id}/remind", "buyer")
    assert (reminded.status, again.status) == (200, 200)
    assert (await shop.post(f"/api/shows/{show_id}/remind", "member")).status == 200
    forgot = await shop.client.delete(f"/api/shows/{show_id}/remind", headers=await shop.headers("member"))
    assert forgot.status == 200

    now = utcnow()
    async with shop.db.transaction() as session:
        await mark_live(session, show_id, now, None)
    async with shop.db.transaction() as session:  # live again after a reconnect: no second mail
        await mark_live(session, show_id, now, None)

    message = await only_mail(shop, inbox, f"show-live:{show_id}:{BUYER}")
    assert message["To"] == "buyer@livemall.example"
    assert message["Subject"] == "Tea tasting is live now"
    assert f"http://shop.example/shows/{show_id}" in body_of(message)
    assert [r.event_key for r in await rows(shop.db, "show-live:")] == [f"show-live:{show_id}:{BUYER}"]
    late = await shop.post(f"/api/shows/{show_id}/remind", "member")
    assert late.status == 409 and (await late.json())["error"] == "show_not_scheduled"


async def test_remind_me_needs_a_signed_in_user(shop):
    show_id = await scheduled_show(shop)
    shop.client.session.cookie_jar.clear()  # signed in by cookie no more
    assert (await shop.client.post(f"/api/shows/{show_id}/remind")).status == 401


async def test_the_schedule_card_of_a_scheduled_show_shows_whether_a_reminder_is_set(shop):
    show_id = await scheduled_show(shop)
    await shop.post(f"/api/shows/{show_id}/remind", "buyer")

    mine = await (await shop.client.get("/", headers={**await shop.headers("buyer"), "Accept-Language": "ko"})).text()
    others = await (await shop.client.get("/", headers=await shop.headers("member"))).text()
    shop.client.session.cookie_jar.clear()
    anonymous = await (await shop.client.get("/")).text()

    button = re.search(rf'<button[^>]*data-remind="{show_id}"[^>]*>([^<]*)</button>', mine, re.S)
    assert button and 'aria-pressed="true"' in button.group(0) and button.group(1) == "알림 설정됨"
    other = re.search(rf'<button[^>]*data-remind="{show_id}"[^>]*>([^<]*)</button>', others, re.S)
    assert other and 'aria-pressed="false"' in other.group(0) and other.group(1) == "Remind me"
    assert "data-remind" not in anonymous and 'href="/login?next=/"' in anonymous
    assert 'src="/static/js/remind.js"' in mine


async def scheduled_show(shop: Shop) -> int:
    created = await shop.post("/api/shows", "host", {"title": "Tea tasting",
                                                    "scheduled_at": (utcnow() + timedelta(days=1)).isoformat()})
    assert created.status == 201, await created.text()
    return (await created.json())["id"]


# --- nothing for what was rolled back --------------------------------------------------------

async def test_a_payment_rolled_back_queues_nothing(shop):
    order = await shop.placed()
    with pytest.raises(RuntimeError):
        async with shop.db.transaction() as session:
            await move(session, order["id"], OrderStatus.paid, utcnow())
            raise RuntimeError("the request failed after the move")
    assert await rows(shop.db, "order-paid:") == []


async def test_an_order_the_database_refuses_in_a_batch_leaves_no_mail(aiohttp_client, shop_url, tmp_path):
    shop = await shop_at(aiohttp_client, shop_url, tmp_path)  # no SMTP: the rows stay to be counted
    async with shop.db.transaction() as session:
        await session.execute(text("CREATE TRIGGER refuse_seven BEFORE INSERT ON orders WHEN NEW.quantity = 7 "
                                   "BEGIN SELECT RAISE(ABORT, 'out of range'); END"))

    await shop.token("buyer")
    responses = await asyncio.gather(*(shop.order(quantity=q) for q in [1] * 5 + [7] + [1] * 5))

    assert [r.status for r in responses].count(201) == 10 and responses[5].status == 422
    placed = {(await r.json())["id"] for r in responses if r.status == 201}
    assert {int(r.event_key.split(":")[1]) for r in await rows(shop.db, "order-placed:")} == placed
    assert len(await rows(shop.db, "order-placed:")) == 10


async def test_on_postgresql_a_burst_of_orders_queues_one_mail_each_and_the_sweeper_one_warning_each(
        aiohttp_client, postgres_url, tmp_path):
    shop = await open_shop(aiohttp_client, postgres_url, tmp_path)  # no SMTP: the rows stay to be counted
    await shop.token("buyer")
    placed = [await r.json() for r in await asyncio.gather(*(shop.order() for _ in range(12)))]
    await shop.post(f"/api/orders/{placed[0]['id']}/confirm-payment", "admin")
    assert {r.event_key for r in await notifications.queued(shop.db)} == \
        {f"order-placed:{o['id']}" for o in placed} | {f"order-paid:{placed[0]['id']}"}

    warn_at = max(datetime.fromisoformat(o["expires_at"]) for o in placed) - timedelta(minutes=10)
    sweepers = [Sweeper(shop.db, 3600, no_events, clock=lambda: warn_at) for _ in range(2)]
    await asyncio.gather(*(s.sweep() for s in sweepers))  # two processes' sweepers at once
    await sweepers[0].sweep()

    warnings = await rows(shop.db, "order-expiring:")
    assert sorted(r.event_key for r in warnings) == sorted(f"order-expiring:{o['id']}" for o in placed[1:])
    assert all(r.user_id == BUYER and r.status is MailStatus.queued and r.due_at == warn_at for r in warnings)


async def no_events(expired) -> None:
    pass


async def test_buyers_who_lose_a_flash_sale_get_no_order_mail(aiohttp_client, shop_url, tmp_path):
    shop = await shop_at(aiohttp_client, shop_url, tmp_path)
    await shop.set_stock(1, 3)
    await shop.token("buyer")

    responses = await asyncio.gather(*(shop.order() for _ in range(8)))

    won = {(await r.json())["id"] for r in responses if r.status == 201}
    assert len(won) == 3 and sorted(r.status for r in responses) == [201] * 3 + [409] * 5
    assert {r.event_key for r in await rows(shop.db, "order-placed:")} == {f"order-placed:{i}" for i in won}


# --- failures: the mail waits and goes out once ------------------------------------------------

async def test_a_mail_waits_while_the_smtp_server_is_down_and_goes_out_when_it_is_back(
        aiohttp_client, shop_url, tmp_path):
    inbox = Inbox()  # not started: nothing listens on its port
    shop = await mail_shop(aiohttp_client, shop_url, tmp_path, inbox)
    try:
        order = await shop.placed()
        key = f"order-placed:{order['id']}"
        while (row := (await notifications.queued(shop.db, [key]))[0]).attempts < 3:
            await asyncio.sleep(0.02)
        assert row.status is MailStatus.queued and row.last_error

        inbox.start()
        message = await inbox.next()
        assert message["Subject"] == f"Order #{order['id']} is reserved for you"
        assert (await settled(shop.db, key)).status is MailStatus.sent
        await asyncio.sleep(0.1)
        assert inbox.drain() == []
    finally:
        inbox.stop()


@pytest.mark.parametrize("failure", ["refuse", "stall"])
async def test_a_refusing_or_stalling_server_leaves_the_mail_queued_until_it_takes_it(
        aiohttp_client, shop_url, tmp_path, inbox, failure):
    setattr(inbox, failure, 2)
    inbox.stall_seconds = 0.6
    shop = await mail_shop(aiohttp_client, shop_url, tmp_path, inbox, smtp_timeout=0.3)
    order = await shop.placed()
    key = f"order-placed:{order['id']}"

    message = await inbox.next()

    row = await settled(shop.db, key)
    assert message["Subject"] == f"Order #{order['id']} is reserved for you"
    assert row.status is MailStatus.sent and row.attempts == 3  # two failures, then sent
    await asyncio.sleep(0.1)
    assert inbox.drain() == []


def test_retries_back_off_exponentially_up_to_the_cap():
    settings = test_settings("sqlite+aiosqlite:///:memory:", mail_retry_base=30, mail_retry_max=3600)
    notifier = Notifier(None, None, settings, None)  # type: ignore[arg-type]
    assert [notifier.retry_delay(a) for a in (1, 2, 3, 4, 8, 20)] == [30, 60, 120, 240, 3600, 3600]


async def test_a_mail_that_keeps_failing_is_given_up_after_the_last_try(aiohttp_client, shop_url, tmp_path,
                                                                         inbox):
    inbox.refuse = 100
    shop = await mail_shop(aiohttp_client, shop_url, tmp_path, inbox, mail_max_attempts=3)
    order = await shop.placed()
    row = await settled(shop.db, f"order-placed:{order['id']}")
    assert row.status is MailStatus.failed and row.attempts == 3 and row.last_error.startswith("554")


# --- two workers on PostgreSQL -------------------------------------------------------------------

@pytest.fixture
async def pg_db(postgres_url) -> Database:
    db = Database(postgres_url)
    async with db.transaction() as session:
        await load_demo(session)
    yield db
    await db.close()


async def test_two_workers_never_send_one_mail_twice(pg_db, inbox, tmp_path):
    now = utcnow()
    async with pg_db.transaction() as session:
        for i in range(60):
            await notifications.password_reset(session, BUYER, f"http://shop.example/r#{i}", 3600, "en", now)
    settings = test_settings(pg_db.url, smtp_host="127.0.0.1", smtp_port=inbox.port, mail_batch=4,
                             mail_from="livemall <no-reply@shop.example>")
    catalogs = {locale: load_translations(locale) for locale in LOCALES}
    mailers = [CountingMailer(settings) for _ in range(2)]
    workers = [Notifier(Database(pg_db.url), mailer, settings, catalogs, name=f"w{i}")
               for i, mailer in enumerate(mailers)]

    async def work(notifier: Notifier) -> None:
        while await notifier.run_once():
            pass

    for worker in workers:  # connected before the race, so neither starts late
        async with worker.db.session() as session:
            await session.execute(text("SELECT 1"))
    try:
        await asyncio.gather(*(work(w) for w in workers))
    finally:
        for w in workers:
            await w.db.close()

    received = inbox.drain()
    links = sorted(re.search(r"http://shop\.example/r#(\d+)", body_of(m)).group(1) for m in received)
    assert links == sorted(str(i) for i in range(60))  # each once
    sent = await notifications.queued(pg_db)
    assert all(r.status is MailStatus.sent and r.attempts == 1 and r.params is None for r in sent)
    assert all(m.sent > 0 for m in mailers) and sum(m.sent for m in mailers) == 60, [m.sent for m in mailers]


class CountingMailer(SmtpMailer):
    """The real SMTP mailer, counting what it handed over (which worker sent how many)."""

    sent = 0

    async def send(self, to: str, subject: str, body: str, *, event_key: str) -> None:
        await super().send(to, subject, body, event_key=event_key)
        self.sent += 1


async def test_a_claimed_mail_is_not_claimed_again_until_its_lease_ends_and_a_sent_one_never(pg_db):
    now = utcnow()
    async with pg_db.transaction() as session:
        await notifications.password_reset(session, BUYER, "http://shop.example/r", 3600, "en", now)
    lease = timedelta(seconds=60)
    first, second = await asyncio.gather(notifications.claim(pg_db, "a", now, lease, 10),
                                         notifications.claim(pg_db, "b", now, lease, 10))
    assert sorted([len(first), len(second)]) == [0, 1]
    holder, mail = ("a", first[0]) if first else ("b", second[0])
    assert await notifications.claim(pg_db, "c", now + timedelta(seconds=59), lease, 10) == []
    # The holder's lease ran out: another worker takes the row, and the old holder's
    # "sent" no longer counts (it lost the claim).
    [again] = await notifications.claim(pg_db, "c", now + timedelta(seconds=61), lease, 10)
    assert again.id == mail.id and again.attempts == 2
    assert not await notifications.mark_sent(pg_db, mail, holder, now)
    assert await notifications.mark_sent(pg_db, again, "c", now)
    assert await notifications.claim(pg_db, "d", now + timedelta(days=1), lease, 10) == []


async def test_a_worker_stopped_mid_batch_hands_the_rest_back_and_nothing_is_sent_twice(shop_url, inbox):
    inbox.delay = 0.05
    db = Database(shop_url)
    async with db.transaction() as session:
        for i in range(12):
            await notifications.password_reset(session, BUYER, f"http://shop.example/r#{i}", 3600, "en", utcnow())
    settings = test_settings(shop_url, smtp_host="127.0.0.1", smtp_port=inbox.port, mail_batch=12, **FAST)
    before = Notifier(db, SmtpMailer(settings), settings, None, name="before-restart")
    before.start()
    first = await inbox.next()

    await before.stop()  # a restart: the mail being sent is finished and marked, the rest handed back

    handed_back = [r for r in await notifications.queued(db) if r.status is MailStatus.queued]
    assert handed_back and all(r.claimed_by is None and r.attempts == 0 for r in handed_back)
    after = Notifier(db, SmtpMailer(settings), settings, None, name="after-restart")
    while await after.run_once():
        pass
    received = [first, *inbox.drain()]
    await db.close()
    links = sorted(int(re.search(r"/r#(\d+)", body_of(m)).group(1)) for m in received)
    assert links == list(range(12))


# --- the expiry warning: once, ten minutes before ----------------------------------------------

async def test_the_expiry_warning_goes_out_once_ten_minutes_before_the_hold_ends(aiohttp_client, shop_url,
                                                                                  tmp_path, inbox):
    shop = await shop_at(aiohttp_client, shop_url, tmp_path)  # no SMTP: only this test's worker sends
    unpaid = await shop.placed()
    paid = await shop.placed()
    await shop.post(f"/api/orders/{paid['id']}/confirm-payment", "admin")
    expires = datetime.fromisoformat(unpaid["expires_at"])
    clock = [utcnow()]
    settings = test_settings(shop_url, smtp_host="127.0.0.1", smtp_port=inbox.port,
                             mail_from="livemall <no-reply@shop.example>", public_url="http://shop.example")
    notifier = Notifier(shop.db, SmtpMailer(settings), settings, {l: load_translations(l) for l in LOCALES},
                        clock=lambda: clock[0])
    sweeper = Sweeper(shop.db, 3600, no_events, clock=lambda: clock[0])  # the order expiry sweeper

    async def at(moment: datetime) -> list[str]:
        clock[0] = moment
        await sweeper.sweep()
        await notifier.run_once()
        return sorted(m["Subject"] for m in inbox.drain())

    assert await at(clock[0]) == sorted([f"Order #{unpaid['id']} is reserved for you",
                                         f"Order #{paid['id']} is reserved for you",
                                         f"Payment received for order #{paid['id']}"])
    assert await at(expires - timedelta(minutes=10, seconds=1)) == []
    assert await at(expires - timedelta(minutes=10)) == [f"Order #{unpaid['id']} expires soon"]
    assert await at(expires - timedelta(minutes=5)) == []
    assert await at(expires + timedelta(minutes=5)) == []
    assert [r.event_key for r in await rows(shop.db, "order-expiring:")] == [f"order-expiring:{unpaid['id']}"]


async def test_the_warning_says_how_long_is_left_in_the_buyers_language(aiohttp_client, shop_url, tmp_path, inbox):
    shop = await shop_at(aiohttp_client, shop_url, tmp_path)
    async with shop.db.transaction() as session:
        await notifications.set_language(session, BUYER, "ru", utcnow())
    order = await shop.placed()
    warn_at = datetime.fromisoformat(order["expires_at"]) - timedelta(minutes=10)
    settings = test_settings(shop_url, smtp_host="127.0.0.1", smtp_port=inbox.port)
    notifier = Notifier(shop.db, SmtpMailer(settings), settings, {l: load_translations(l) for l in LOCALES},
                        clock=lambda: warn_at + timedelta(seconds=2))
    await Sweeper(shop.db, 3600, no_events, clock=lambda: warn_at).sweep()

    await notifier.run_once()

    warning = [m for m in inbox.drain() if "скоро истекает" in m["Subject"]]
    assert [m["Subject"] for m in warning] == [f"Срок заказа №{order['id']} скоро истекает"]
    assert "истечёт через 10 минут, в " in body_of(warning[0])


async def test_a_warning_not_sent_before_the_order_expired_is_dropped(aiohttp_client, shop_url, tmp_path, inbox):
    shop = await shop_at(aiohttp_client, shop_url, tmp_path)
    order = await shop.placed()
    expires = datetime.fromisoformat(order["expires_at"])
    await Sweeper(shop.db, 3600, no_events, clock=lambda: expires - timedelta(minutes=5)).sweep()
    settings = test_settings(shop_url, smtp_host="127.0.0.1", smtp_port=inbox.port)
    # The SMTP server was away until after the hold ended.
    notifier = Notifier(shop.db, SmtpMailer(settings), settings, None, clock=lambda: expires + timedelta(seconds=1))
    await notifier.run_once()
    subjects = [m["Subject"] for m in inbox.drain()]
    assert subjects == [f"Order #{order['id']} is reserved for you"]
    [warning] = await rows(shop.db, "order-expiring:")
    assert warning.status is MailStatus.dropped


async def test_a_hold_shorter_than_the_warning_gets_no_warning(aiohttp_client, shop_url, tmp_path):
    shop = await shop_at(aiohttp_client, shop_url, tmp_path, order_expiry=300)
    order = await shop.placed()
    expires = datetime.fromisoformat(order["expires_at"])
    await Sweeper(shop.db, 3600, no_events, clock=lambda: expires - timedelta(minutes=4)).sweep()
    assert await rows(shop.db, "order-expiring:") == []
