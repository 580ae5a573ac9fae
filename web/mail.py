"""Outgoing e-mail: a small port, as orders/events.py is for rooms.

`SmtpMailer` hands one message to the configured SMTP server (`smtp_host`, `smtp_port`,
optional STARTTLS and login) with aiosmtplib, on the event loop: the notifier
(web/notifier.py) sends every notification through it, so a blocking client in a
thread per mail is not worth keeping. Every call is bounded by `smtp_timeout`.
`NoMailer` (no `smtp_host`) sends nothing; the notifier is not started with it, so
mails stay queued until an SMTP server is configured.

A failed send raises `MailNotSent` (server unreachable, refusing, or too slow); the
notifier retries it later.
"""

from __future__ import annotations

import asyncio
import hashlib
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

import aiosmtplib

from web.settings import Settings


class MailNotSent(Exception):
    """The SMTP server did not take the message; `reason` is safe to log (no address)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str, *, event_key: str) -> None: ...


def message_id(event_key: str, mail_from: str) -> str:
    """The same Message-ID for every try of one event's mail, so a duplicate (the rare
    resend after a lost reply) can be recognised by the recipient's mail client."""
    domain = mail_from.rpartition("@")[2].strip(" >") or "livemall.invalid"
    return f"<{hashlib.sha256(event_key.encode()).hexdigest()[:32]}@{domain}>"


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def message(self, to: str, subject: str, body: str, *, event_key: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id(event_key, self._settings.mail_from)
        message.set_content(body)  # UTF-8 as needed: names and text in any language
        return message

    async def send(self, to: str, subject: str, body: str, *, event_key: str) -> None:
        s = self._settings
        try:
            await aiosmtplib.send(
                self.message(to, subject, body, event_key=event_key),
                hostname=s.smtp_host, port=s.smtp_port, start_tls=s.smtp_starttls,
                username=s.smtp_user or None, password=s.smtp_password or None, timeout=s.smtp_timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:  # 4xx/5xx from the server
            raise MailNotSent(f"{exc.code} {exc.message[:120]}") from exc
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:  # down, timeout, dropped
            raise MailNotSent(type(exc).__name__) from exc


class NoMailer:
    async def send(self, to: str, subject: str, body: str, *, event_key: str) -> None:
        raise MailNotSent("LIVEMALL_SMTP_HOST is not set")


def mailer_for(settings: Settings) -> Mailer:
    return SmtpMailer(settings) if settings.smtp_host else NoMailer()
