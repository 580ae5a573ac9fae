"""HTML pages: schedule, watch, studio, co-view, admin, sign-in and registration.

Pages are jinja2 templates (autoescape on) plus small ES modules from `web/static`
(no build step). Texts come from gettext catalogs in `web/i18n/<locale>/LC_MESSAGES/
messages.po`, read with Babel at start-up and compiled in memory, so there is no
compiled `.mo` to keep in step with its `.po`.

The signed-in user is the one of the `livemall_session` cookie. The browser sends that
cookie with the Socket.IO handshake and with API calls, so most pages need no token in
JavaScript. WHIP needs `Authorization: Bearer`, and the cookie is HttpOnly: the studio
handler renders the cookie's (already verified) token into the signed-in host's own
studio page, served `Cache-Control: no-store`. One source of truth (the cookie), so a
new tab or a reload needs no sessionStorage.
"""

from __future__ import annotations

import io
import re
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from sqlalchemy import func, select

from orders import addresses, brokers, catalog, notifications, reports, shows
from orders.errors import NotFound, Unauthorized
from orders.models import (
    Exhibition,
    ExhibitionProduct,
    Order,
    PackageItem,
    Product,
    ProductKind,
    Quote,
    Role,
    Show,
    ON_AIR,
    ShowStatus,
    Supplier,
    User,
)
from rooms.coview import find_room, room_public
from rooms.stage import pins_of, product_event, segment_event
from web.api_coview import invite_url
from web.headers import page_policy
from web import money_format, report_chart
from web.appkeys import DB
from web.auth import is_https, optional_user, request_token
from web.validation import id_or_none

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
I18N = HERE / "i18n"
# The pages' languages as BCP 47 tags (the `lang` attribute, the switch's URL and cookie,
# the scripts' Intl locale). Chinese is Simplified: its catalog is `zh_Hans` (Babel's
# identifier; `Locale.parse("zh-Hans", sep="-")`), and every `zh` of Accept-Language
# (zh-CN, zh-SG, also zh-TW and zh-Hant: Simplified reads better to them than English)
# gets it.
LOCALES = ("en", "ko", "ru", "zh-Hans", "vi")
DEFAULT_LOCALE = "en"
LANG_COOKIE = "livemall_lang"
INCOTERMS = ("EXW", "FOB", "CIF", "DAP", "DDP")  # the ones POST /api/quotes accepts
ADMIN_ROWS = 200  # rows per admin list: a page, not an export

ENVIRONMENTS = web.AppKey("page_environments", dict)  # locale -> jinja2.Environment
TRANSLATIONS = web.AppKey("translations", dict)  # locale -> babel.support.Translations (e-mails)



def N_(message: str) -> str:
    """Marks a message for extraction (pybabel); it is translated when a page renders."""
    return message


def ngettext(singular: str, plural: str) -> tuple[str, str]:
    """Marks a message with plural forms for extraction (pybabel knows `ngettext`);
    `js_messages` renders its form for each plural category of the page's language."""
    return singular, plural


# (kind sent in `react`, what the button shows, its accessible label)
REACTIONS = (("heart", "❤️", N_("Love it")), ("clap", "👏", N_("Applause")),
             ("fire", "🔥", N_("Hot deal")), ("wow", "😮", N_("Wow")))


# The order moves an admin makes from the admin page: (route under /api/orders/{id}/,
# button label, the statuses it applies to), as orders/lifecycle.py allows them.
ORDER_MOVES = (
    ("confirm-payment", N_("Payment received"), ("pending",)),
    ("ship", N_("Mark shipped"), ("paid",)),
    ("deliver", N_("Mark delivered"), ("shipped",)),
    ("refund", N_("Refund"), ("paid", "shipped", "delivered")),
)


# A show's status in words, as the admin's list shows it (the badges say the same).
SHOW_STATUSES = {"scheduled": N_("Scheduled"), "live": N_("Live"), "reconnecting": N_("Reconnecting"),
                 "ended": N_("Ended")}


# The committees' names (orders/demo.py's 14, by their English name, the catalogs' msgid).
# A page in Korean shows the committee's own `name_ko`; in Russian, Chinese and Vietnamese
# its `name_en` through the catalog (a committee added later with a name the catalogs do
# not know is shown in English). The scripts get them in `js_messages` as
# `committee:<English name>` (watch.js, committeeName): the `segment` event is the same
# for every viewer, so it carries the English name and each page translates it.
COMMITTEE_NAMES = (
    N_("Food & Beverages"), N_("Cosmetics & Beauty"), N_("Medical & Quarantine Goods"),
    N_("Machinery & Equipment"), N_("Electrical & Electronics"), N_("Fashion & Apparel"), N_("Seafood"),
    N_("Agricultural Products"), N_("Health Supplements"), N_("Household Goods"), N_("Auto Parts"),
    N_("Chemicals & Materials"), N_("Culture & Content"), N_("Logistics & Distribution"),
)


def committee_name(translations: Translations, locale: str, committee: Any) -> str:
    """A committee's name in the page's language (see COMMITTEE_NAMES)."""
    if locale == "ko" and committee.name_ko:
        return committee.name_ko
    return translations.gettext(committee.name_en) if committee.name_en else committee.name_en


# Messages the JavaScript modules show, by key: rendered into each page, translated.
JS_MESSAGES: dict[str, str] = {
    "sold_out": N_("Sold out"),
    "buy": N_("Buy"),
    "confirm_buy": N_("Buy {quantity} × {name} for {total}?"),
    "confirm": N_("Confirm"),
    "cancel": N_("Cancel"),
    "ordering": N_("Placing your order…"),
    "order_status": N_("Order #{id}: {status}"),
    "checkout": N_("Check out and pay"),
    "status_pending": N_("confirmed, awaiting payment"),
    "status_paid": N_("paid"),
    "status_shipped": N_("shipped"),
    "status_delivered": N_("delivered"),
    "status_cancelled": N_("cancelled"),
    "status_expired": N_("expired"),
    "status_refunded": N_("refunded"),
    "quote_status_requested": N_("requested"),
    "quote_status_answered": N_("answered"),
    "quote_status_accepted": N_("accepted"),
    "quote_status_declined": N_("declined"),
    "quote_sent": N_("Quote request #{id} sent"),
    "quote_answered": N_("Quote #{id}: {price} per unit"),
    "sign_in_to_buy": N_("Sign in to buy"),
    "sign_in_to_chat": N_("Sign in to chat"),
    "try_again": N_("Something went wrong. Try again."),
    "network_error": N_("Network error: check your connection and try again."),
    "live": N_("Live"),
    "badge_ended": N_("Ended"),
    "badge_scheduled": N_("Scheduled"),
    "ended": N_("This show has ended."),
    "scheduled": N_("This show has not started yet."),
    "tap_for_sound": N_("Tap for sound"),
    "connecting": N_("Connecting…"),
    "video_failed": N_("The video could not start. Reload to try again."),
    "video_reconnecting": N_("Reconnecting…"),
    "video_stalled": N_("The video has stopped. Reconnecting…"),
    "host_reconnecting": N_("The host is reconnecting…"),
    "asked": N_("Your question was sent to the host."),
    "answered": N_("Answered"),
    "via_coview": N_("via co-view"),
    "delete": N_("Delete"),
    "mute": N_("Mute 5 min"),
    "answer": N_("Mark answered"),
    "pin": N_("Pin"),
    "unpin": N_("Unpin"),
    "pinned": N_("Pinned"),
    "go_live": N_("Go live"),
    "end_show": N_("End show"),
    "going_live": N_("Going live…"),
    "on_air": N_("On air"),
    "off_air": N_("Off air"),
    "air_reconnecting": N_("Reconnecting"),
    "resuming": N_("Reconnecting to the studio… attempt {n}"),
    "resume_refused": N_("The studio could not reconnect: {message}"),
    "end_failed": N_("The show could not be ended. Try again."),
    "publisher_exists": N_("This show is already being published from somewhere else."),
    "camera_failed": N_("No camera or microphone: allow access and reload."),
    "sold": N_("{quantity} × {name} sold"),
    "copied": N_("Copied"),
    "private": N_("Private"),
    "credited": N_("Order #{id}: {quantity} × {name}, {total}"),
    "commission": N_("your commission {amount}"),
    "field_invalid": N_("Check this field."),
    "wrong_password": N_("Wrong e-mail or password."),
    "email_taken": N_("An account with this e-mail already exists."),
    "invalid_email": N_("Enter a valid e-mail address."),
    "invalid_password": N_("Use 8 to 128 characters."),
    "weak_password": N_("This password is too common, or it is your e-mail or name: choose another."),
    "name_characters": N_("Use visible letters, digits and symbols: no control or invisible characters."),
    "invalid_name": N_("Enter a name of up to 100 characters."),
    "invalid_country": N_("Two letters, e.g. KR."),
    "invalid_quantity": N_("Enter a quantity the seller can supply."),
    "invalid_price": N_("Enter a price of 0 or more, e.g. 12.50."),
    "invalid_days": N_("Enter a whole number of days."),
    "show_not_live": N_("The show is not live."),
    "forbidden": N_("You may not do this."),
    "coview_started": N_("Co-view room created"),
    "saved": N_("Saved"),
    "segment_added": N_("Segment {n} added: {title}"),
    "unknown_product": N_("Product"),
    "catalog_added": N_("Added: {name}"),
    "invalid_currency": N_("Three letters, e.g. KRW or USD."),
    "invalid_stock": N_("Enter a whole number of units, 0 or more."),
    "invalid_units": N_("Enter a whole number of units (a negative one writes units off)."),
    "invalid_moq": N_("Enter a whole number, 1 or more."),
    "invalid_period": N_("The end must come after the start."),
    "invalid_image_url": N_("Enter an https:// address."),
    # Prices in the buyer's currency (web/static/js/prices.js, orders/exchange_rates.py)
    "rate_of": N_("Exchange rate of {date}: 1 {source} = {rate} {target}"),
    "pay_in": N_("You pay in {currency}."),
    # The watch page's phone overlay, product drawer and shoppable replay (watch.js)
    "overlays_hide": N_("Hide the overlays"),
    "overlays_show": N_("Show the overlays"),
    "request_quote": N_("Request a quote"),
    "segment_now": N_("Now"),
    "drawer_empty": N_("No products in this show's line-up."),
    "jump_to": N_("{name} at {time}"),
    "replay_preparing": N_("The replay is being prepared…"),
}


# Messages with a count `{n}`, by key: the page gets one text per plural category of its
# language (Russian: one, few, many; Korean, Chinese, Vietnamese: a single form), and the
# scripts pick one with Intl.PluralRules (web/static/js/page.js, `t`).
JS_PLURALS: dict[str, tuple[str, str]] = {
    "left": ngettext("{n} left", "{n} left"),
    "viewers": ngettext("{n} watching", "{n} watching"),
    "muted": ngettext("You are muted for {n} second.", "You are muted for {n} seconds."),
    "slow_mode": ngettext("Slow mode: wait {n} second.", "Slow mode: wait {n} seconds."),
    "rate_limited": ngettext("Too many messages: wait {n} second.", "Too many messages: wait {n} seconds."),
    "slow_mode_on": ngettext("Slow mode: one message every {n} second", "Slow mode: one message every {n} seconds"),
    "not_enough_stock": ngettext("Only {n} left in stock.", "Only {n} left in stock."),
}


# --- catalogs and environments ------------------------------------------------------

def babel_locale(locale: str) -> Locale:
    """A page language (BCP 47, `zh-Hans`) as Babel's Locale (`zh_Hans`)."""
    return Locale.parse(locale, sep="-")


def catalog_dir(locale: str) -> Path:
    """Where a language's catalog is: web/i18n/<Babel identifier>/LC_MESSAGES."""
    return I18N / str(babel_locale(locale)) / "LC_MESSAGES"


def load_translations(locale: str) -> Translations:
    """The locale's catalog: its .po read with Babel and compiled in memory."""
    path = catalog_dir(locale) / "messages.po"
    with path.open("rb") as handle:
        po = read_po(handle, locale=str(babel_locale(locale)))
    buffer = io.BytesIO()
    # Fuzzy entries are left out, as msgfmt does: a guess is not a translation.
    write_mo(buffer, po, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer)


def plural_texts(translations: Translations, locale: str, singular: str, plural: str) -> dict[str, str]:
    """A count message's text per CLDR plural category (`one`, `few`, `many`, `other`) of
    the language, each from the catalog's own plural formula at a count of that category."""
    rules = babel_locale(locale).plural_form
    texts: dict[str, str] = {}
    for n in range(200):  # every integer category shows up below 200 (Russian: 1, 2, 0)
        texts.setdefault(rules(n), translations.ngettext(singular, plural, n))
    texts.setdefault("other", translations.ngettext(singular, plural, 5))
    return texts


def by_name(name: str) -> str:
    """A sort key close enough to each language's alphabet without ICU: accents after the
    letter they mark (Vietnamese Ấn Độ with the A's, not after Z), case ignored."""
    return unicodedata.normalize("NFD", name).casefold()


def countries_in(locale: Locale, countries: list[dict[str, str]]) -> list[dict[str, str]]:
    """ISO countries ({code, name}) named in the language (CLDR's names) and sorted by them."""
    named = [{**country, "name": locale.territories.get(country["code"], country["name"])} for country in countries]
    return sorted(named, key=lambda country: by_name(country["name"]))


def make_environment(locale: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # everything a user typed is escaped: no |safe on user data
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    translations = load_translations(locale)
    # newstyle: `_("Hi %(name)s", name=x)` escapes `x` and formats after translating.
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.globals["locale"] = locale
    # tojson escapes < > & ' for HTML; keeping non-ASCII as is keeps the pages readable.
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
    env.globals["js_messages"] = {
        **{key: translations.gettext(text) for key, text in JS_MESSAGES.items()},
        **{key: plural_texts(translations, locale, *texts) for key, texts in JS_PLURALS.items()},
        **{f"committee:{name}": translations.gettext(name) for name in COMMITTEE_NAMES},
    }
    env.globals["locales"] = LOCALES
    env.globals["show_statuses"] = {status: translations.gettext(text) for status, text in SHOW_STATUSES.items()}
    env.globals["reactions"] = REACTIONS
    env.globals["incoterms"] = INCOTERMS
    env.globals["on_air_statuses"] = tuple(status.value for status in ON_AIR)
    formats = babel_locale(locale)
    env.filters["money"] = money_format.money_filter(formats)  # Babel, for the page's locale
    env.globals["audience_chart"] = _audience_chart(env.filters["money"])  # the admin's report chart
    # The server writes UTC; the page's script rewrites <time> in the viewer's zone.
    env.filters["utc"] = lambda value: format_datetime(value, "medium", tzinfo=timezone.utc, locale=formats) + " UTC"
    env.filters["iso"] = lambda value: value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    env.filters["committee_name"] = lambda c: committee_name(translations, locale, c)
    # Country choices in the page's language: a form's list, searchable by name.
    env.filters["countries_by_name"] = lambda countries: countries_in(formats, countries)
    env.globals["country_choices"] = countries_in(formats, addresses.countries())
    # Each language in its own words (русский, 中文 (简体), Tiếng Việt), as a switch shows it.
    env.filters["language_name"] = lambda code: babel_locale(code).get_display_name(babel_locale(code))
    return env


# --- request helpers ----------------------------------------------------------------

def choose_locale(request: web.Request) -> str:
    """The cookie's language if set (the switch: an explicit choice beats the browser's
    default), else the best of Accept-Language, else English. An account has no language
    of its own yet (orders.models.User); when it gets one, it goes first."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LOCALES:
        return chosen
    return negotiate(request.headers.get("Accept-Language", ""))


PRIMARY_TAGS = {locale.split("-")[0].lower(): locale for locale in LOCALES}  # "zh" -> "zh-Hans"


def negotiate(header: str) -> str:
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        match = re.search(r"q=([^;,\s]*)", params)
        if match:
            try:
                quality = float(match.group(1))
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        chosen = PRIMARY_TAGS.get(primary)
        if chosen and quality > 0:
            ranked.append((-quality, index, chosen))
    return sorted(ranked)[0][2] if ranked else DEFAULT_LOCALE


def safe_next(target: str | None) -> str:
    """A local path to go back to; anything else (other hosts, `//x`, `\\x`) is `/`."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 2000:
        return "/"
    if any(ord(ch) < 32 for ch in target):
        return "/"
    return target


async def page_user(request: web.Request) -> User | None:
    """The signed-in user, or None: an expired or forged cookie means signed out here
    (the JSON API says 401; a page just asks the visitor to sign in again)."""
    try:
        return await optional_user(request)
    except Unauthorized:
        return None


def to_login(request: web.Request) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")


def user_public(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "name": user.name, "role": user.role.value}


def render(
    request: web.Request,
    template: str,
    *,
    user: User | None,
    data: dict[str, Any] | None = None,
    status: int = 200,
    token: bool = False,
    **context: Any,
) -> web.Response:
    locale = choose_locale(request)
    env: jinja2.Environment = request.app[ENVIRONMENTS][locale]
    page_data: dict[str, Any] = {"locale": locale, "user": user_public(user),
                                 "currency": money_format.buyer_currency(request, user, locale), **(data or {})}
    if token and user is not None:
        page_data["token"] = request_token(request)
    html = env.get_template(template).render(
        user=user, page_data=page_data, path=request.path_qs, request_path=request.path, **context
    )
    response = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    # connect-src names this node's origin only (web/headers.py; no bare ws:/wss:).
    response.headers["Content-Security-Policy"] = page_policy(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Vary"] = "Cookie, Accept-Language"
    # Pages carry the signed-in user's name (and on some, their token): never cached.
    response.headers["Cache-Control"] = "no-store" if user is not None else "no-cache"
    return response


def not_found(request: web.Request, user: User | None, message: str) -> web.Response:
    return render(request, "error.html", user=user, status=404, message=message)


def _id(request: web.Request, name: str) -> int | None:
    return id_or_none(request.match_info[name])


# --- pages --------------------------------------------------------------------------

async def schedule(request: web.Request) -> web.Response:
    user = await page_user(request)
    async with request.app[DB].session() as session:
        rows = await shows.list_shows(session)
        reminded = await notifications.reminded_show_ids(session, user.id) if user else set()  # Remind me
    groups = {
        # A show whose host is reconnecting is still on (the relay holds it for a
        # grace period): it is listed with the live ones.
        "live": [s for s in rows if s.status in ON_AIR],
        "upcoming": [s for s in rows if s.status is ShowStatus.scheduled],
        "past": sorted((s for s in rows if s.status is ShowStatus.ended),
                       key=lambda s: s.ended_at or s.scheduled_at, reverse=True),
    }
    return render(request, "schedule.html", user=user, groups=groups, can_host=shows.can_host,
                  reminded_show_ids=reminded)


async def _product_cards(session, show: Show, product_ids: list[int], at: datetime) -> dict[int, dict[str, Any]]:
    """Products as the show's viewers see them (the exhibition price when one is in force)."""
    cards: dict[int, dict[str, Any]] = {}
    for product_id in product_ids:
        if product_id in cards:
            continue
        product = await session.get(Product, product_id)
        if product is not None:
            # The image address too, for the drawer (product_event's own image fields win).
            cards[product_id] = {"image_url": product.image_url, **await product_event(session, show, product, at)}
    return cards


async def _show_context(session, show: Show) -> dict[str, Any]:
    """What the watch and co-view pages render before the socket connects."""
    now = datetime.now(timezone.utc)
    segment = shows.current_segment(show)
    pins: list[dict[str, Any]] = []
    recording = None
    if show.status is ShowStatus.ended and show.recording_path:
        recording = f"/recordings/{show.id}"
        pins = [p for p in await pins_of(session, show.id) if p["offset_ms"] is not None]
        started = show.started_at
        for pin in pins:
            # The replay needs when each pin went off screen, on the same clock as offset_ms.
            unpinned = pin.get("unpinned_at")
            pin["until_ms"] = (
                int((datetime.fromisoformat(unpinned) - started).total_seconds() * 1000)
                if unpinned and started else None
            )
    product_ids = [p["product_id"] for p in pins]
    if show.pinned_product_id:
        product_ids.append(show.pinned_product_id)
    # The "products in this show" drawer: every segment's line-up (the script puts the
    # current segment first), each product as a card like the pinned one.
    lineup = [{"segment": segment_event(seg), "product_ids": [sp.product_id for sp in seg.products]}
              for seg in show.segments]
    product_ids += [pid for group in lineup for pid in group["product_ids"]]
    cards = await _product_cards(session, show, product_ids, now)
    return {
        "show": show,
        "segment": segment,
        "pin": cards.get(show.pinned_product_id) if show.pinned_product_id else None,
        "data": {
            "show_id": show.id,
            "status": show.status.value,
            "started_at": show.started_at.isoformat() if show.started_at else None,
            "segment": segment_event(segment) if segment else None,
            "pin": cards.get(show.pinned_product_id) if show.pinned_product_id else None,
            "recording": recording,
            "pins": pins,
            "products": {str(k): v for k, v in cards.items()},
            "lineup": [{**group, "product_ids": [pid for pid in group["product_ids"] if pid in cards]}
                       for group in lineup],
        },
    }


async def watch(request: web.Request) -> web.Response:
    user = await page_user(request)
    show_id = _id(request, "show_id")
    if show_id is None:
        return not_found(request, user, "show")
    async with request.app[DB].session() as session:
        try:
            show = await shows.get_show(session, show_id)
        except NotFound:
            return not_found(request, user, "show")
        context = await _show_context(session, show)
    data = context.pop("data")
    return render(request, "watch.html", user=user, data=data, coview=None, **context)


async def coview(request: web.Request) -> web.Response:
    user = await page_user(request)
    if user is None:
        raise to_login(request)
    code = request.match_info["code"]
    now = datetime.now(timezone.utc)
    async with request.app[DB].session() as session:
        try:
            room = await find_room(session, code, now)
        except NotFound as exc:  # includes an expired invitation
            return render(request, "error.html", user=user, status=404,
                          message="coview_expired" if exc.code == "coview_expired" else "coview")
        show = await shows.get_show(session, room.show_id)
        context = await _show_context(session, show)
        room_info = await room_public(session, room, invite_url(request, room.code))
        credited = await brokers.credited_orders(session, room) if user.id == room.owner_id else None
    data = context.pop("data")
    # The owner's credited orders: rendered by the script from here, then refreshed from
    # GET /api/coview/{code}/orders after each sale.
    data["coview"] = {**room_info, "is_owner": user.id == room.owner_id, "orders": credited}
    return render(request, "watch.html", user=user, data=data, coview=room_info,
                  is_owner=user.id == room.owner_id, **context)


async def studio(request: web.Request) -> web.Response:
    user = await page_user(request)
    show_id = _id(request, "show_id")
    if user is None:
        raise to_login(request)
    if show_id is None:
        return not_found(request, user, "show")
    async with request.app[DB].session() as session:
        try:
            show = await shows.get_show(session, show_id)
        except NotFound:
            return not_found(request, user, "show")
        if not shows.can_host(user, show):
            raise to_login(request)
        now = datetime.now(timezone.utc)
        lineup_ids = [sp.product_id for seg in show.segments for sp in seg.products]
        cards = await _product_cards(session, show, lineup_ids, now)
        lineup = [
            {"segment": seg, "products": [cards[sp.product_id] for sp in seg.products if sp.product_id in cards]}
            for seg in show.segments
        ]
        segment = shows.current_segment(show)
        data = {
            "show_id": show.id,
            "status": show.status.value,
            "segment": segment_event(segment) if segment else None,
            "pinned_product_id": show.pinned_product_id,
            "slow_mode": show.slow_mode,
            "products": {str(k): v for k, v in cards.items()},
            "max_bitrate": 1_500_000,
        }
    return render(request, "studio.html", user=user, data=data, token=True, show=show, lineup=lineup,
                  segment=segment, slow_modes=(0, 5, 10, 30, 60))


def _audience_chart(money):
    def chart(data: dict[str, Any], **texts: str):
        return report_chart.audience_svg(data, report_chart.ChartTexts(money=money, **texts))

    return chart


async def admin(request: web.Request) -> web.Response:
    user = await page_user(request)
    if user is None or user.role is not Role.admin:
        raise to_login(request)
    async with request.app[DB].session() as session:
        overview = await admin_overview(session, report_show=id_or_none(request.query.get("report_show", "")))
    return render(request, "admin.html", user=user, **overview)


async def admin_overview(session, report_show: int | None = None) -> dict[str, Any]:
    """The admin page's lists, reports and form choices."""
    committees = await catalog.list_committees(session)
    suppliers = list(await session.scalars(select(Supplier).order_by(Supplier.id).limit(ADMIN_ROWS)))
    products = await catalog.list_products(session)
    package_ids = set(await session.scalars(select(PackageItem.package_id).distinct()))
    packages = [(p, await catalog.package_items(session, p.id)) for p in products if p.id in package_ids]
    exhibitions = list(await session.scalars(select(Exhibition).order_by(Exhibition.starts_at.desc()).limit(ADMIN_ROWS)))
    exhibition_counts = dict((await session.execute(
        select(ExhibitionProduct.exhibition_id, func.count()).group_by(ExhibitionProduct.exhibition_id)
    )).all())
    show_rows = await shows.list_shows(session)
    users = list(await session.scalars(select(User).order_by(User.id).limit(ADMIN_ROWS)))
    names = {u.id: u.name for u in users}
    orders = (await session.execute(
        select(Order, Product.name, User.name)
        .join(Product, Product.id == Order.product_id)
        .join(User, User.id == Order.buyer_id)
        .order_by(Order.id.desc()).limit(ADMIN_ROWS)
    )).all()
    quotes = (await session.execute(
        select(Quote, Product.name, User.name, Product.currency)
        .join(Product, Product.id == Quote.product_id)
        .join(User, User.id == Quote.buyer_id)
        .order_by(Quote.id.desc()).limit(ADMIN_ROWS)
    )).all()
    # Reports: orders/reports.py's figures, the same the report API and its CSV files
    # give (a sale is paid, shipped or delivered; refunds subtracted).
    committee_rows = {c.id: c for c in committees}
    by_committee = [{**row, "code": row["committee"], "committee": committee_rows.get(row["committee_id"])}
                    for row in await reports.sales_by_committee(session)]
    funnel_committees = [{**row, "code": row["committee"], "committee": committee_rows.get(row["committee_id"])}
                         for row in await reports.funnel_by_committee(session)]
    by_broker = await brokers.broker_report(session)  # credits of refunded orders are reversed, not counted
    started = [s for s in show_rows if s.started_at is not None]
    chart_show = next((s for s in started if s.id == report_show), None)
    if chart_show is None and started:
        chart_show = max(started, key=lambda s: (s.started_at, s.id))
    audience = (await reports.audience_curve(session, chart_show.id, datetime.now(timezone.utc))
                if chart_show is not None else None)
    return {
        "committees": committees,
        "suppliers": suppliers,
        "products": products,
        "packages": packages,
        "exhibitions": exhibitions,
        "exhibition_counts": exhibition_counts,
        "shows": show_rows,
        "users": users,
        "user_names": names,
        "orders": orders,
        "quotes": quotes,
        "by_committee": by_committee,
        "by_broker": by_broker,
        "funnel_shows": await reports.funnel_by_show(session),
        "funnel_committees": funnel_committees,
        "funnel_brokers": await reports.funnel_by_broker(session),
        "chart_shows": started,
        "audience": audience,
        "hosts": [u for u in users if u.role in (Role.host, Role.admin)],
        "industrial": ProductKind.industrial,
        "order_moves": ORDER_MOVES,
    }


async def _invitation(request: web.Request, target: str) -> dict[str, str] | None:
    """Whose co-view room a signed-out visitor was invited to, when `next` is one's
    invite link (a wrong or expired code names nobody; the room page says why later)."""
    match = re.fullmatch(r"/coview/([A-Za-z0-9_-]{8,32})", target)
    if match is None:
        return None
    async with request.app[DB].session() as session:
        try:
            room = await find_room(session, match.group(1), datetime.now(timezone.utc))
        except NotFound:
            return None
        show = await shows.get_show(session, room.show_id)
        owner = await session.get(User, room.owner_id)
        return {"owner": owner.name if owner else "", "show": show.title}


async def login_page(request: web.Request) -> web.Response:
    user = await page_user(request)
    target = safe_next(request.query.get("next"))
    invitation = await _invitation(request, target) if user is None else None
    return render(request, "login.html", user=user, data={"next": target}, next=target, invitation=invitation)


async def register_page(request: web.Request) -> web.Response:
    user = await page_user(request)
    target = safe_next(request.query.get("next"))
    return render(request, "register.html", user=user, data={"next": target}, next=target)


async def reset_password_page(request: web.Request) -> web.Response:
    """Ask for a reset e-mail, or (with the e-mail's #token) choose the new password."""
    user = await page_user(request)
    return render(request, "reset_password.html", user=user)


async def switch_language(request: web.Request) -> web.Response:
    """The language switch: remember the choice in a cookie, go back where one was."""
    code = request.match_info["code"]
    target = safe_next(request.query.get("next"))
    response = web.HTTPSeeOther(target)
    if code in LOCALES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax", path="/",
                            secure=is_https(request))
    raise response


def setup(app: web.Application) -> None:
    app[ENVIRONMENTS] = {locale: make_environment(locale) for locale in LOCALES}
    app[TRANSLATIONS] = {locale: load_translations(locale) for locale in LOCALES}
    app.router.add_get("/", schedule)
    app.router.add_get("/shows/{show_id}", watch)
    app.router.add_get("/studio/{show_id}", studio)
    app.router.add_get("/coview/{code}", coview)
    app.router.add_get("/admin", admin)
    app.router.add_get("/login", login_page)
    app.router.add_get("/register", register_page)
    app.router.add_get("/reset-password", reset_password_page)
    app.router.add_get("/lang/{code}", switch_language)
    app.router.add_static("/static", STATIC, follow_symlinks=False)


__all__ = ["setup", "choose_locale", "negotiate", "safe_next", "JS_MESSAGES", "JS_PLURALS", "LOCALES"]
