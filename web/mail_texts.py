"""The e-mails' texts, from the pages' gettext catalogs (web/i18n), in the language of
the page that asked for the e-mail: its `livemall_lang` switch, else its Accept-Language
(web/pages.py, `choose_locale`). An account has no language of its own yet; whoever asks
for a reset does so from the reset page, in the language they read.

Texts are plain (the body is `text/plain`): nothing here is HTML-escaped, and a name is
put in as typed.
"""

from __future__ import annotations

from aiohttp import web
from babel.support import NullTranslations

from web.pages import TRANSLATIONS, choose_locale


def _translations(request: web.Request) -> NullTranslations:
    # Without the pages (an API-only app) the mail goes out in English, the source language.
    catalogs = request.app.get(TRANSLATIONS)
    return catalogs[choose_locale(request)] if catalogs else NullTranslations()


def reset_password_mail(request: web.Request, name: str, link: str, ttl_seconds: int) -> tuple[str, str]:
    """The password-reset e-mail: (subject, body)."""
    _ = _translations(request)
    minutes = max(1, ttl_seconds // 60)
    subject = _.gettext("Reset your livemall password")
    body = "\n\n".join([
        _.gettext("Hello %(name)s,") % {"name": name},
        _.gettext("Someone (hopefully you) asked to reset the password of your livemall account.") + "\n"
        + _.ngettext("Open this link within %(num)s minute to choose a new one (it works once):",
                     "Open this link within %(num)s minutes to choose a new one (it works once):",
                     minutes) % {"num": minutes},
        link,
        _.gettext("If it was not you, ignore this e-mail: your password stays as it is."),
    ]) + "\n"
    return subject, body
