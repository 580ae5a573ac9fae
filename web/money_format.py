"""Money as the pages write it, and the currency a buyer reads prices in.

**Formatting**: integer minor units → Babel's `format_currency` for the page's locale
(CLDR: the locale's symbol, grouping and decimal sign; the currency's own fraction
digits, KRW 0, USD 2). The scripts write the same with `Intl.NumberFormat(locale,
{style: "currency", currency})` (web/static/js/page.js, prices.js), both from CLDR data.

**The buyer's currency** (what "≈ ₽1,930" beside "$22.00" is in), in this order:
1. the currency picker's choice (cookie `livemall_currency`, set by the page's script);
2. the account's: the currency of the account's country (RU → RUB, KR → KRW) — accounts
   have a country, not a currency of their own;
3. the page's language: ko → KRW, ru → RUB, zh-Hans → CNY, vi → VND, en → USD.
Buyers always pay in the product's currency; this one is only for reading.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from babel import Locale
from babel.numbers import format_currency

from orders.admin_catalog import check_currency
from orders.errors import Invalid
from orders.exchange_rates import country_currency, exponent

if TYPE_CHECKING:
    from aiohttp import web

    from orders.models import User

CURRENCY_COOKIE = "livemall_currency"
LOCALE_CURRENCIES = {"en": "USD", "ko": "KRW", "ru": "RUB", "zh-Hans": "CNY", "vi": "VND"}
DEFAULT_CURRENCY = "USD"
_CODE = re.compile(r"[A-Z]{3}")


def format_money(minor: int, currency: str, locale: Locale) -> str:
    """Minor units of `currency` written for `locale`: 2200 USD in ru → "22,00 $"."""
    # A Decimal, not a float: exact however large the amount.
    return format_currency(Decimal(minor).scaleb(-exponent(currency)), currency, locale=locale)


def money_filter(locale: Locale) -> Callable[[int, str], str]:
    """The templates' `{{ price|money(currency) }}`."""
    return lambda minor, currency: format_money(minor, currency, locale)


def is_currency(code: str) -> bool:
    try:
        check_currency(code)
    except Invalid:
        return False
    return True


def buyer_currency(request: web.Request, user: User | None, locale: str) -> str:
    """The currency the buyer reads converted prices in (see the module)."""
    chosen = request.cookies.get(CURRENCY_COOKIE, "")
    if _CODE.fullmatch(chosen) and is_currency(chosen):
        return chosen
    if user is not None:
        own = country_currency(user.country)
        if own is not None:
            return own
    return LOCALE_CURRENCIES.get(locale, DEFAULT_CURRENCY)
