"""One place that turns failures into JSON errors `{error, message}` with the right status,
the `message` in the request's language.

The `error` code is the machine-readable part and never changes with the language. The
`message` is written in English where the error is raised (domain code knows no
languages) and translated here, by the pages' catalogs (web/i18n), for a request whose
language (web/pages.py: the language cookie, else Accept-Language) is not English:

1. a message the catalogs know as such (`MESSAGES`: a fixed sentence often seen, such as
   "wrong e-mail or password") by its own translation;
2. else the error's code (`ERROR_TEXTS`): one sentence per code, a count in it (`{n}`:
   units left, seconds to wait) taken from the error's detail and written in the
   language's plural form;
3. else the English message as raised.

English keeps the raised message, with its specifics (`the minimum order quantity is
10`). Socket.IO refusals go through `localize_reply` (rooms/events.py). Every domain error class's
code has a text here, translated in every catalog (tests/pages/test_translated_errors.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Mapping

import redis.exceptions
from aiohttp import web
from sqlalchemy import exc as sa_exc

from orders import errors as domain

log = logging.getLogger(__name__)

STATUS: dict[type[domain.DomainError], int] = {
    domain.NotFound: 404,
    domain.Unauthorized: 401,
    domain.Forbidden: 403,
    domain.Conflict: 409,
    domain.Invalid: 422,
    domain.Unavailable: 503,
}

# Other packages (live/) register their own error classes here at set-up.
EXTRA: dict[type[Exception], tuple[int, str]] = {}


def dumps(value: object) -> str:
    # UTF-8 as is: Korean, Russian and Chinese text stays readable on the wire.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def json_error(status: int, code: str, message: str, **extra: object) -> web.Response:
    return json_response({"error": code, "message": message, **extra}, status=status)


# --- messages in the user's language ------------------------------------------------

def N_(message: str) -> str:
    """Marks a message for extraction (pybabel, web/i18n/babel.cfg)."""
    return message


@dataclass(frozen=True)
class Counted:
    """A text with a count `{n}` (plural forms), the count being the error's `detail[key]`;
    `otherwise` when the detail has no count."""

    singular: str
    plural: str
    key: str
    otherwise: str


def ngettext(singular: str, plural: str, key: str, otherwise: str) -> Counted:
    """Marks a message with plural forms for extraction (pybabel knows `ngettext`)."""
    return Counted(singular, plural, key, otherwise)


# Each error code's sentence for a user. Several reuse the pages' own texts (the same
# msgid, so one translation): "Sold out", "Only {n} left in stock." ...
ERROR_TEXTS: dict[str, str | Counted] = {
    # orders/errors.py: the general kinds
    "error": N_("Something went wrong. Try again."),
    "internal": N_("Something went wrong. Try again."),
    "not_found": N_("This was not found."),
    "unauthorized": N_("Sign in to continue."),
    "forbidden": N_("You may not do this."),
    "conflict": N_("This cannot be done now. Reload the page and try again."),
    "invalid": N_("Check what you entered."),
    "bad_request": N_("This request is not valid."),
    "unavailable": N_("The service is briefly unavailable. Try again shortly."),
    "email_taken": N_("An account with this e-mail already exists."),
    "sold_out": N_("Sold out"),
    "insufficient_stock": ngettext("Only {n} left in stock.", "Only {n} left in stock.", "available", N_("Sold out")),
    "not_enough_stock": ngettext("Only {n} left in stock.", "Only {n} left in stock.", "stock", N_("Sold out")),
    # accounts
    "weak_password": N_("This password is too common, or it is your e-mail or name: choose another."),
    "name_characters": N_("Use visible letters, digits and symbols: no control or invisible characters."),
    # ordering, checkout, payments
    "invalid_quantity": N_("Enter a quantity the seller can supply."),
    "quote_required": N_("This product is sold on quotation: request a quote."),
    "idempotency_mismatch": N_("This request was already sent with other contents."),
    "idempotency_key_required": N_("The request needs an Idempotency-Key."),
    "order_refused_by_database": N_("The order could not be stored. Try again."),
    "total_too_large": N_("The total is too large."),
    "invalid_coview": N_("This co-view invitation is not valid."),
    "unknown_show": N_("There is no such show."),
    "not_watching": N_("A sale is credited only to a show you are watching or watched."),
    "address_required": N_("Choose a delivery address."),
    "address_not_found": N_("This address was not found."),
    "payment_started": N_("Payment has already started for this order."),
    "order_expired": N_("The hold on this order has ended: place it again."),
    "order_changed": N_("The order changed meanwhile. Reload the page and try again."),
    "illegal_transition": N_("This cannot be done in its current status. Reload the page."),
    "not_shippable": N_("This product does not ship to this address."),
    "shipping_on_quote": N_("Shipping to this address is quoted on request."),
    "currency_not_supported": N_("The card processor does not take this currency."),
    "payment_refused": N_("The payment was refused."),
    "card_declined": N_("The card was declined."),
    "payment_processor_unavailable":
        N_("The card processor cannot be reached: the order stays pending. Try again shortly."),
    "payment_processor_error": N_("The card processor failed: the order stays pending. Try again."),
    "bad_signature": N_("The signature is not valid."),
    "unknown_provider": N_("This payment provider is not offered."),
    "amount_mismatch": N_("The amount does not match the order."),
    "invalid_rate": N_("This exchange rate is not valid."),
    # quotes
    "not_quotable": N_("This product is ordered, not quoted."),
    "quote_expired": N_("This quote is no longer valid: ask for a new one."),
    "own_quote": N_("Nobody answers their own quote request."),
    "price_needs_admin": N_("Only an administrator may quote below half the list price."),
    # images (the admin's upload; the pages' own texts)
    "image_too_large": N_("This file is too large."),
    "request_entity_too_large": N_("This file is too large."),
    "unsupported_image": N_("Send a JPEG, PNG or WebP image."),
    "image_too_many_pixels": N_("This image has too many pixels."),
    "too_many_images": N_("This product has as many images as it may have: delete one first."),
    "image_exists": N_("This product already has this image."),
    "upload_timeout": N_("The upload took too long. Try again."),
    # flash deals and auctions
    "not_in_lineup": N_("This product is not in the show's line-up."),
    "deal_units_above_stock": N_("The deal has more units than the stock."),
    "deal_running": N_("A flash deal is already running."),
    "deal_not_open": N_("The flash deal has not started."),
    "deal_ended": N_("The flash deal has ended."),
    "deal_sold_out": N_("The flash deal is sold out."),
    "deal_limit": N_("You have reached the deal's limit per buyer."),
    "bid_too_low": N_("Your bid is too low."),
    "auction_ended": N_("The auction has ended."),
    "auction_not_open": N_("The auction is not open."),
    "auction_running": N_("An auction is already running."),
    "seller_cannot_bid": N_("The seller cannot bid."),
    "already_leading": N_("You are already the highest bidder."),
    "lot_out_of_stock": N_("This lot is out of stock."),
    "show_not_scheduled": N_("This show is not scheduled."),
    # rooms (chat, co-view)
    "muted": ngettext("You are muted for {n} second.", "You are muted for {n} seconds.", "retry_after",
                      N_("You may not do this.")),
    "slow_mode": ngettext("Slow mode: wait {n} second.", "Slow mode: wait {n} seconds.", "retry_after",
                          N_("Check what you entered.")),
    "rate_limited": ngettext("Too many attempts: try again in {n} second.",
                             "Too many attempts: try again in {n} seconds.",
                             "retry_after", N_("The service is briefly unavailable. Try again shortly.")),
    "coview_expired": N_("This invitation has expired."),
    "coview_full": N_("This co-view room is full."),
    "show_ended": N_("This show has ended."),
    "draining": N_("This server is shutting down: try again."),
    "not_connected": N_("Not connected to the show yet: try again."),
    "too_many_connections": N_("Too many connections from your address."),
    # video (live/errors.py, web/media.py)
    "show_not_live": N_("The show is not live."),
    "bad_offer": N_("The video could not start. Reload to try again."),
    "publisher_exists": N_("This show is already being published from somewhere else."),
    "unknown_session": N_("This video session has ended."),
    "relay_unavailable": N_("The video service is briefly unavailable. Try again shortly."),
    "origin_unavailable": N_("The video service is briefly unavailable. Try again shortly."),
    "too_many_viewers": N_("Too many viewers right now. Try again shortly."),
    "no_recording": N_("This show has no recording yet."),
    "slow_body": N_("The request took too long to arrive. Try again."),
    "live_error": N_("The video could not start. Reload to try again."),
    # orders: flash-deal orders, giveaways, coupons and mileage
    "use_flash_deal": N_("A flash deal is selling this product: buy it through the deal."),
    "giveaway_running": N_("A giveaway is already running."),
    "prize_out_of_stock": N_("The prize is out of stock."),
    "already_entered": N_("You have already entered this giveaway."),
    "giveaway_ended": N_("The giveaway has ended."),
    "not_eligible": N_("You may not enter this giveaway."),
    "host_cannot_enter": N_("The host cannot enter their own giveaway."),
    "coupon_unknown": N_("There is no such coupon."),
    "coupon_not_started": N_("This coupon is not valid yet."),
    "coupon_expired": N_("This coupon has expired."),
    "coupon_used_up": N_("This coupon has been used up."),
    "coupon_buyer_limit": N_("You have used this coupon as often as it allows."),
    "coupon_min_spend": N_("This coupon needs a larger order."),
    "coupon_not_applicable": N_("This coupon does not apply to this order."),
    "coupon_currency": N_("This coupon is in another currency."),
    "coupon_already_applied": N_("A coupon is already applied to this order."),
    "coupon_code_taken": N_("This coupon code is already taken."),
    "voucher_not_pinned": N_("This voucher is not on screen now."),
    "voucher_not_claimed": N_("Claim this voucher first."),
    "not_enough_points": N_("You do not have enough points."),
    "points_already_redeemed": N_("Points have already been used for this order."),
    "points_above_share": N_("Points may pay only part of this order."),
    "points_currency": N_("Points cannot pay an order in this currency."),
}

# Fixed English messages that say more than their code, by their own translation.
MESSAGES: dict[str, str] = {
    "wrong e-mail or password": N_("Wrong e-mail or password."),
    "only the show's host may do this": N_("Only the show's host may do this."),
    "this session has ended (signed out); sign in again": N_("This session has ended: sign in again."),
    "no co-view room with this code": N_("There is no co-view room with this code."),
    "this reset link is invalid, expired or already used; ask for a new one":
        N_("This reset link is invalid, expired or already used: ask for a new one."),
    "the message is empty": N_("The message is empty."),
    "the message has no visible text": N_("The message has no visible text."),
    "the current password is wrong": N_("The current password is wrong."),
}


def localize_message(code: str, message: str, detail: Mapping[str, Any], locale: str,
                     translations: Mapping[str, Any] | None) -> str:
    """The error's message for a user of `locale` (a page language, `zh-Hans`);
    `translations`: locale -> babel Translations (web/pages.py's TRANSLATIONS)."""
    if locale == "en" or not translations or locale not in translations:
        return message
    catalog = translations[locale]
    if message in MESSAGES:
        return catalog.gettext(MESSAGES[message])
    text = ERROR_TEXTS.get(code)
    if text is None:
        return message
    if isinstance(text, Counted):
        n = detail.get(text.key)
        if isinstance(n, bool) or not isinstance(n, (int, float)):
            return catalog.gettext(text.otherwise)
        count = int(n) if float(n).is_integer() else n
        return catalog.ngettext(text.singular, text.plural, count).replace("{n}", str(count))
    return catalog.gettext(text)


def request_locale(request: web.Request) -> str:
    # Imported here: web.pages imports the API handlers, which import this module.
    from web.pages import choose_locale

    return choose_locale(request)


def localized(request: web.Request, code: str, message: str, detail: Mapping[str, Any] | None = None) -> str:
    """`message` in the request's language (English when the app has no catalogs)."""
    from web.pages import TRANSLATIONS

    translations = request.app.get(TRANSLATIONS)
    if not translations:
        return message
    return localize_message(code, message, detail or {}, request_locale(request), translations)


def status_of(exc: domain.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


class BadRequest(domain.DomainError):
    code = "bad_request"


STATUS[BadRequest] = 400


def socket_locale(environ: Mapping[str, Any]) -> str:
    """The page language of a socket: its handshake's language cookie, else its
    Accept-Language, as web/pages.py chooses a page's (the page's own cookie rides along
    with the handshake)."""
    from web.pages import LANG_COOKIE, LOCALES, negotiate  # see request_locale

    request = environ.get("aiohttp.request")
    if request is not None:
        chosen = request.cookies.get(LANG_COOKIE)
        header = request.headers.get("Accept-Language", "")
    else:
        cookies = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        chosen = cookies[LANG_COOKIE].value if LANG_COOKIE in cookies else None
        header = environ.get("HTTP_ACCEPT_LANGUAGE", "")
    return chosen if chosen in LOCALES else negotiate(header)


def localize_reply(reply: dict[str, Any], environ: Mapping[str, Any] | None,
                   detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A refusal (`{ok: false, error, message, ...}` or a connect refusal's data) with its
    `message` in the socket's language; the `error` code is left as is. Refusals are rare
    next to chat and reactions, so the language is read again from the handshake each
    time rather than kept per socket."""
    message = reply.get("message")
    if not environ or not isinstance(message, str):
        return reply
    request = environ.get("aiohttp.request")
    app = getattr(request, "app", None)
    from web.pages import TRANSLATIONS

    translations = app.get(TRANSLATIONS) if app is not None else None
    if not translations:
        return reply
    counts = {**reply, **(detail or {})}  # retry_after rides in the reply itself
    text = localize_message(str(reply.get("error", "")), message, counts, socket_locale(environ), translations)
    return reply if text == message else {**reply, "message": text}


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except domain.DomainError as exc:
        extra = {k: v for k, v in exc.detail.items() if isinstance(v, (str, int, float, list, dict))}
        return json_error(status_of(exc), exc.code, localized(request, exc.code, exc.message, exc.detail), **extra)
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        code = exc.reason.lower().replace(" ", "_")
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        response = json_error(exc.status, code, localized(request, code, exc.reason))
        response.headers.update(headers)
        return response
    except (sa_exc.OperationalError, sa_exc.InterfaceError, redis.exceptions.ConnectionError,
            ConnectionRefusedError, TimeoutError) as exc:
        # A backing service is down: say so, and let the transaction's rollback keep
        # nothing half-written. The client may retry (same Idempotency-Key for orders).
        log.warning("backing service unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
        response = json_error(503, "unavailable",
                              localized(request, "unavailable", "a backing service is unavailable; retry shortly"))
        response.headers["Retry-After"] = "2"
        return response
    except Exception as exc:
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            response = json_error(503, "unavailable",
                                  localized(request, "unavailable", "the database connection was lost; retry shortly"))
            response.headers["Retry-After"] = "2"
            return response
        for cls, (status, code) in EXTRA.items():
            if isinstance(exc, cls):
                code = getattr(exc, "code", code)
                response = json_error(status, code, localized(request, code, str(exc) or code))
                if retry_after := getattr(exc, "retry_after", None):  # e.g. OriginUnavailable
                    response.headers["Retry-After"] = str(retry_after)
                return response
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal", localized(request, "internal", "internal server error"))


def _wants_json(request: web.Request) -> bool:
    path = request.path
    return path.startswith(("/api/", "/whip/", "/whep/")) or path in ("/healthz", "/readyz") or (
        "application/json" in request.headers.get("Accept", "")
    )
