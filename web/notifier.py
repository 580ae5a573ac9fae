"""The mail worker: sends what orders/notifications.py queued, in the background.

Each process runs one `Notifier` (an aiohttp cleanup_ctx, only with an SMTP server
configured). It claims due rows (a lease, so several processes share one queue without
sending a row twice), renders each in its recipient's language (web/mail_texts.py),
hands it to the SMTP server (web/mail.py) and marks it sent. A failure — the server
down, refusing (4xx/5xx) or too slow — leaves the row queued for a later try, after
`mail_retry_base` seconds doubled at each failure up to `mail_retry_max`; after
`mail_max_attempts` it is marked failed. A mail older than `mail_max_age` is dropped
rather than sent that late. Failures are logged without the address.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta

from aiohttp import web
from babel.support import NullTranslations

from orders import notifications
from orders.db import Database
from orders.models import utcnow
from web.appkeys import DB, SETTINGS
from web.mail import Mailer, MailNotSent, mailer_for
from web.mail_texts import render
from web.settings import Settings

log = logging.getLogger(__name__)


def base_url(settings: Settings) -> str:
    """Where links in e-mails point: public_url, never a request's Host; without one,
    the node's own address."""
    return settings.public_url.rstrip("/") or f"http://{settings.host}:{settings.port}"


class Notifier:
    def __init__(self, db: Database, mailer: Mailer, settings: Settings,
                 catalogs: Mapping[str, NullTranslations] | None, *,
                 clock: Callable[[], datetime] = utcnow, name: str | None = None) -> None:
        self.db = db
        self.mailer = mailer
        self.settings = settings
        self.catalogs = catalogs
        self.clock = clock
        self.name = name or f"{settings.node_name}-{uuid.uuid4().hex[:12]}"  # this worker's claims
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop = asyncio.Event()  # wakes the poll's wait at shutdown

    def retry_delay(self, attempts: int) -> float:
        s = self.settings
        return min(s.mail_retry_max, s.mail_retry_base * 2 ** max(0, attempts - 1))

    async def run_once(self) -> int:
        """Claim one batch of due mails and deal with each; how many were claimed."""
        s = self.settings
        lease = s.mail_claim_lease
        claimed = await notifications.claim(self.db, self.name, self.clock(), timedelta(seconds=lease), s.mail_batch)
        started = time.monotonic()
        for mail in claimed:
            if self._stopping or time.monotonic() - started + s.smtp_timeout * 2 > lease:
                # Shutting down, or too little of the lease left to finish safely (another
                # worker may soon take the row): hand it back rather than risk sending twice.
                await notifications.postpone(self.db, mail, self.name, self.clock())
                continue
            await self._deliver(mail)
        return len(claimed)

    async def _deliver(self, mail: notifications.Claimed) -> None:
        now = self.clock()
        if (now - mail.created_at).total_seconds() > self.settings.mail_max_age:
            await notifications.mark_dropped(self.db, mail, self.name, "too old to send")
            return
        facts = await notifications.context(self.db, mail, now)
        if isinstance(facts, notifications.Drop):
            await notifications.mark_dropped(self.db, mail, self.name, facts.reason)
            return
        if isinstance(facts, notifications.Later):
            await notifications.postpone(self.db, mail, self.name, facts.at)
            return
        try:
            subject, body = render(mail.kind, facts, self.catalogs, base_url(self.settings))
        except Exception as exc:  # noqa: BLE001 - a text that cannot be written (a bad catalog entry)
            # is a bug, not a passing failure: trying again would only block its batch.
            log.exception("e-mail %s could not be written", mail.event_key)
            await notifications.mark_failed(self.db, mail, self.name, f"render: {type(exc).__name__}")
            return
        try:
            await self.mailer.send(facts["to"], subject, body, event_key=mail.event_key)
        except MailNotSent as failure:
            if mail.attempts >= self.settings.mail_max_attempts:
                log.warning("e-mail %s given up after %d tries: %s", mail.event_key, mail.attempts, failure.reason)
                await notifications.mark_failed(self.db, mail, self.name, failure.reason)
            else:
                delay = self.retry_delay(mail.attempts)
                log.info("e-mail %s not sent (%s); retrying in %.1fs", mail.event_key, failure.reason, delay)
                await notifications.mark_retry(self.db, mail, self.name, self.clock() + timedelta(seconds=delay),
                                               failure.reason)
            return
        if not await notifications.mark_sent(self.db, mail, self.name, self.clock()):
            log.warning("e-mail %s was sent after this worker's claim ran out", mail.event_key)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mail-notifier")

    async def stop(self) -> None:
        """Let the mail being sent finish and be marked (a restart must not send it again),
        hand back the rest of the batch, then end; cancelled if that takes too long."""
        if self._task is not None:
            self._stopping = True
            self._stop.set()
            await asyncio.wait([self._task], timeout=self.settings.smtp_timeout + 1)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        interval = self.settings.mail_poll_interval
        while not self._stopping:
            try:
                # A full batch means more may be due: go on without waiting.
                while await self.run_once() >= self.settings.mail_batch and not self._stopping:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a database hiccup must not end the worker
                log.warning("mail queue run failed; retrying in %.1fs", interval, exc_info=True)
            try:
                await asyncio.wait_for(self._stop.wait(), interval)
            except asyncio.TimeoutError:
                pass


NOTIFIER = web.AppKey("notifier", Notifier)


async def _notifier(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.smtp_host:
        log.info("LIVEMALL_SMTP_HOST is not set: e-mails stay queued, none is sent")
        yield
        return
    from web.pages import TRANSLATIONS

    notifier = Notifier(app[DB], mailer_for(settings), settings, app.get(TRANSLATIONS))
    app[NOTIFIER] = notifier
    notifier.start()
    yield
    await notifier.stop()


def setup(app: web.Application) -> None:
    """After the database's cleanup_ctx: the worker stops before the database closes."""
    app.cleanup_ctx.append(_notifier)
