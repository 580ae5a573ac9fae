"""The e-mails' texts, from the pages' gettext catalogs (web/i18n), in the recipient's
language: the one the mail was queued with (a password reset: the page that asked),
else the account's (orders/notifications.py `language_of`: stored, else Korean for
accounts in Korea, English for the rest).

Each kind of mail is one function of plain facts (`orders.notifications.context`) and a
catalog, returning (subject, body). Texts are plain (the body is `text/plain`): nothing
here is HTML-escaped, and a name is put in as typed. Money and times are formatted with
Babel for the language; a time is shown in the recipient's zone when their country has
one (`COUNTRY_ZONES`), with its UTC offset, and always in UTC too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.dates import format_datetime
from babel.numbers import format_currency, get_currency_precision
from babel.support import NullTranslations

from orders import notifications as n
from web.pages import TRANSLATIONS, babel_locale, choose_locale

# Countries with one time zone, where a buyer's local time is known from their account's
# country; elsewhere (Russia, the US, …: several zones) the mail says UTC only.
COUNTRY_ZONES = {
    "KR": "Asia/Seoul", "JP": "Asia/Tokyo", "CN": "Asia/Shanghai", "VN": "Asia/Ho_Chi_Minh",
    "TW": "Asia/Taipei", "HK": "Asia/Hong_Kong", "TH": "Asia/Bangkok", "PH": "Asia/Manila",
    "SG": "Asia/Singapore", "MY": "Asia/Kuala_Lumpur", "UZ": "Asia/Tashkent", "KG": "Asia/Bishkek",
    "GB": "Europe/London", "DE": "Europe/Berlin", "FR": "Europe/Paris",
}


def translations_for(catalogs: Mapping[str, NullTranslations] | None, language: str) -> NullTranslations:
    # Without the pages' catalogs (an API-only app) the mail goes out in English, the source language.
    return catalogs.get(language, NullTranslations()) if catalogs else NullTranslations()


def money(amount: int, currency: str, language: str) -> str:
    """Minor units as the language writes the currency (₩32,000; 15,00 $)."""
    digits = get_currency_precision(currency)
    return format_currency(Decimal(amount).scaleb(-digits), currency, locale=babel_locale(language))


def moment(at: datetime, language: str, country: str | None) -> str:
    """`at` in the recipient's zone with its offset, and in UTC: never a bare local time."""
    locale = babel_locale(language)
    utc = format_datetime(at, "medium", tzinfo=timezone.utc, locale=locale) + " UTC"
    zone = COUNTRY_ZONES.get((country or "").upper())
    if zone is None:
        return utc
    local = ZoneInfo(zone)
    return (format_datetime(at, "medium", tzinfo=local, locale=locale) + " "
            + format_datetime(at, "ZZZZ", tzinfo=local, locale=locale) + f" ({utc})")


def _hello(_: NullTranslations, facts: Mapping[str, Any]) -> str:
    return _.gettext("Hello %(name)s,") % {"name": facts["name"]}


def _item(facts: Mapping[str, Any]) -> str:
    return f"{facts['quantity']} × {facts['product']}"


def _join(*parts: str) -> str:
    return "\n\n".join(part for part in parts if part) + "\n"


def order_placed(_: NullTranslations, f: Mapping[str, Any], base: str) -> tuple[str, str]:
    lang = f["language"]
    subject = _.gettext("Order #%(id)s is reserved for you") % {"id": f["order_id"]}
    return subject, _join(
        _hello(_, f),
        _.gettext("Your order #%(id)s is reserved: %(item)s, %(total)s.")
        % {"id": f["order_id"], "item": _item(f), "total": money(f["total"], f["currency"], lang)},
        _.gettext("Please pay by %(time)s. After that the order expires and the goods go back on sale.")
        % {"time": moment(f["expires_at"], lang, f["country"])},
        _.gettext("Pay or follow your order here:") + f"\n{base}/orders/{f['order_id']}",
    )


def order_expiring(_: NullTranslations, f: Mapping[str, Any], base: str) -> tuple[str, str]:
    lang = f["language"]
    minutes = f["minutes_left"]
    subject = _.gettext("Order #%(id)s expires soon") % {"id": f["order_id"]}
    return subject, _join(
        _hello(_, f),
        _.ngettext("Your order #%(id)s (%(item)s, %(total)s) is not paid yet and expires in %(num)s minute, "
                   "at %(time)s.",
                   "Your order #%(id)s (%(item)s, %(total)s) is not paid yet and expires in %(num)s minutes, "
                   "at %(time)s.", minutes)
        % {"id": f["order_id"], "item": _item(f), "total": money(f["total"], f["currency"], lang), "num": minutes,
           "time": moment(f["expires_at"], lang, f["country"])},
        _.gettext("Pay before then to keep it:") + f"\n{base}/orders/{f['order_id']}",
    )


def order_paid(_: NullTranslations, f: Mapping[str, Any], base: str) -> tuple[str, str]:
    subject = _.gettext("Payment received for order #%(id)s") % {"id": f["order_id"]}
    return subject, _join(
        _hello(_, f),
        _.gettext("We received %(total)s for your order #%(id)s (%(item)s). We will write again when it ships.")
        % {"id": f["order_id"], "item": _item(f), "total": money(f["total"], f["currency"], f["language"])},
        f"{base}/orders/{f['order_id']}",
    )


def order_shipped(_: NullTranslations, f: Mapping[str, Any], base: str) -> tuple[str, str]:
    tracking = f.get("tracking")
    subject = _.gettext("Order #%(id)s has shipped") % {"id": f["order_id"]}
    return subject, _join(
        _hello(_, f),
        _.gettext("Your order #%(id)s (%(item)s) is on its way.") % {"id": f["order_id"], "item": _item(f)},
        "\n".join([
            _.gettext("Carrier: %(carrier)s") % {"carrier": tracking["carrier_name"]},
            _.gettext("Tracking number: %(number)s") % {"number": tracking["number"]},
            _.gettext("Track the parcel here:") + f"\n{tracking['url']}",
        ]) if tracking else "",
        f"{base}/orders/{f['order_id']}",
    )


def quote_answered(_: NullTranslations, f: Mapping[str, Any], base: str) -> tuple[str, str]:
    lang = f["language"]
    subject = _.gettext("Your quote #%(id)s has an answer") % {"id": f["quote_id"]}
    return subject, _join(
        _hello(_, f),
        _.gettext("Your quote request #%(id)s for %(item)s has been answered: %(price)s a unit, %(total)s in all.")
        % {"id": f["quote_id"], "item": _item(f), "price": money(f["unit_price"], f["currency"], lang),
           "total": money(f["unit_price"] * f["quantity"], f["currency"], lang)},
        _.gettext("The offer is valid until %(time)s. Accept or decline it here:")
        % {"time": moment(f["valid_until"], lang, f["country"])} + f"\n{base}/quotes",
    )


def show_live(_: NullTranslations, f: Mapping[str, Any], base: str) -> tuple[str, str]:
    subject = _.gettext("%(title)s is live now") % {"title": f["title"]}
    return subject, _join(
        _hello(_, f),
        _.gettext("The show you asked to be reminded of is live now: %(title)s") % {"title": f["title"]},
        _.gettext("Watch it here:") + f"\n{base}/shows/{f['show_id']}",
    )


def password_reset(_: NullTranslations, f: Mapping[str, Any], base: str) -> tuple[str, str]:
    return reset_password_text(_, f["name"], f["link"], int(f["ttl_seconds"]))


def reset_password_text(_: NullTranslations, name: str, link: str, ttl_seconds: int) -> tuple[str, str]:
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


TEXTS: dict[str, Callable[[NullTranslations, Mapping[str, Any], str], tuple[str, str]]] = {
    n.ORDER_PLACED: order_placed,
    n.ORDER_EXPIRING: order_expiring,
    n.ORDER_PAID: order_paid,
    n.ORDER_SHIPPED: order_shipped,
    n.QUOTE_ANSWERED: quote_answered,
    n.SHOW_LIVE: show_live,
    n.PASSWORD_RESET: password_reset,
}


def render(kind: str, facts: Mapping[str, Any], catalogs: Mapping[str, NullTranslations] | None,
           base_url: str) -> tuple[str, str]:
    """(subject, body) of a queued mail, in `facts["language"]`."""
    return TEXTS[kind](translations_for(catalogs, facts["language"]), facts, base_url.rstrip("/"))


def reset_password_mail(request: web.Request, name: str, link: str, ttl_seconds: int) -> tuple[str, str]:
    """The password-reset e-mail as the page that asked reads it: (subject, body)."""
    return reset_password_text(translations_for(request.app.get(TRANSLATIONS), choose_locale(request)),
                               name, link, ttl_seconds)
