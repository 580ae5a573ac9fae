"""Outgoing e-mail (password resets): a small port, as orders/events.py is for rooms.

`SmtpMailer` hands a message to the configured SMTP server (`smtp_host`, `smtp_port`,
optional STARTTLS and login) with the standard library's smtplib in a worker thread:
a reset mail is rare, so a blocking client off the event loop costs nothing worth a
new dependency. `NoMailer` (no `smtp_host`) only logs that nothing was sent.

`Outbox` sends in the background: a reset request is answered before, and whether or
not, an e-mail goes out, so neither the reply nor its timing says if an account exists.
It belongs to the app, which cancels what is still unsent at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage
from typing import Protocol

from web.settings import Settings

log = logging.getLogger(__name__)


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def message(self, to: str, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)  # UTF-8 as needed: names and text in any language
        return message

    async def send(self, to: str, subject: str, body: str) -> None:
        await asyncio.to_thread(self._send, self.message(to, subject, body))

    def _send(self, message: EmailMessage) -> None:
        s = self._settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
            smtp.send_message(message)


class NoMailer:
    async def send(self, to: str, subject: str, body: str) -> None:
        log.warning("no e-mail sent (%s): LIVEMALL_SMTP_HOST is not set", subject)


def mailer_for(settings: Settings) -> Mailer:
    return SmtpMailer(settings) if settings.smtp_host else NoMailer()


class Outbox:
    """Background sends; failures are logged (without the address), never raised to a request."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self._tasks: set[asyncio.Task] = set()

    def post(self, to: str, subject: str, body: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(self._send(to, subject, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send(self, to: str, subject: str, body: str) -> None:
        try:
            await self.mailer.send(to, subject, body)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("e-mail not sent (%s): %s", subject, type(exc).__name__)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
