"""Errors and committee names in the user's language: JSON API errors and Socket.IO
refusals keep their `error` code and carry their `message` translated (web/errors.py,
rooms/errors.py); every error class's code has a text every catalog translates; the
committees are named in each page's language (web/pages.py, COMMITTEE_NAMES)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re

import pytest
import socketio

from orders.demo import COMMITTEES
from orders.errors import DomainError
from web.errors import ERROR_TEXTS, MESSAGES, Counted, localize_message
from tests.pages.conftest import watch_page
from web.pages import COMMITTEE_NAMES, LOCALES, load_translations

TRANSLATED = [locale for locale in LOCALES if locale != "en"]
PLACEHOLDER = re.compile(r"\{\w+\}")


def _error_classes() -> list[type[Exception]]:
    """Every domain error class (and live/'s errors, which web/errors.py maps too), with
    every module of the packages imported so that none is missed."""
    import live
    import orders
    import rooms
    import web
    from live.errors import LiveError

    for package in (orders, rooms, web, live):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" in module.name:
                continue
            importlib.import_module(module.name)

    def walk(cls: type[Exception]) -> list[type[Exception]]:
        return [cls] + [c for sub in cls.__subclasses__() for c in walk(sub)]

    return [cls for cls in walk(DomainError) + walk(LiveError) if cls.__module__.split(".")[0] != "tests"]


def _texts() -> list[str]:
    """Every msgid the error texts use but the forms of counted ones."""
    texts: list[str] = list(MESSAGES.values())
    for text in ERROR_TEXTS.values():
        texts += [text.otherwise] if isinstance(text, Counted) else [text]
    return texts


# --- catalogs ---------------------------------------------------------------------------

def test_every_error_class_has_a_text_for_its_code():
    missing = sorted({f"{cls.__module__}.{cls.__name__}: {cls.code}" for cls in _error_classes()
                      if getattr(cls, "code", None) not in ERROR_TEXTS})
    assert missing == []


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_error_text_is_translated_with_its_placeholders(locale):
    catalog = load_translations(locale)
    untranslated = [text for text in _texts() if catalog.gettext(text) == text]
    for text in ERROR_TEXTS.values():
        if isinstance(text, Counted):
            forms = {n: catalog.ngettext(text.singular, text.plural, n) for n in (1, 2, 5)}
            if forms[1] == text.singular or forms[5] == text.plural:
                untranslated.append(text.singular)
            assert all(PLACEHOLDER.findall(form) == ["{n}"] for form in forms.values()), forms
    assert untranslated == []


@pytest.mark.parametrize(("n", "russian"), [(1, "1 секунду"), (2, "2 секунды"), (5, "5 секунд"), (21, "21 секунду")])
def test_a_count_in_an_error_takes_the_languages_plural_form(n, russian):
    translations = {"ru": load_translations("ru")}
    message = localize_message("rate_limited", "too many messages", {"retry_after": n}, "ru", translations)
    assert message == f"Слишком много попыток: повторите через {russian}."


def test_english_keeps_the_message_as_raised():
    translations = {"en": load_translations("en")}
    assert localize_message("invalid", "the minimum order quantity is 10", {}, "en", translations) == (
        "the minimum order quantity is 10")


def test_the_committee_names_are_the_demos_and_translated_in_every_catalog():
    assert list(COMMITTEE_NAMES) == [english for _code, _ko, english in COMMITTEES]
    for locale in TRANSLATED:
        catalog = load_translations(locale)
        assert [name for name in COMMITTEE_NAMES if catalog.gettext(name) == name] == [], locale
    korean = load_translations("ko")
    assert [korean.gettext(english) for _code, _ko, english in COMMITTEES] == [ko for _code, ko, _en in COMMITTEES]


# --- over HTTP and Socket.IO ---------------------------------------------------------------

@pytest.mark.parametrize(("header", "message"), [
    ("ru-RU,ru;q=0.9", "Неверный адрес эл. почты или пароль."),
    ("zh-CN,zh;q=0.9", "邮箱或密码错误。"),
    ("vi-VN,vi;q=0.9", "Sai e-mail hoặc mật khẩu."),
    ("en-US", "wrong e-mail or password"),
])
async def test_an_api_error_comes_back_in_the_requests_language_with_its_code(client, header, message):
    response = await client.post("/api/auth/login", json={"email": "member@livemall.example", "password": "nope-nope"},
                                 headers={"Accept-Language": header})
    assert response.status == 401
    assert await response.json() == {"error": "unauthorized", "message": message}


async def test_the_language_cookie_beats_accept_language_for_an_api_error(client):
    client.session.cookie_jar.update_cookies({"livemall_lang": "ru"})
    response = await client.post("/api/orders", json={"product_id": 1, "quantity": 1},
                                 headers={"Accept-Language": "vi", "Idempotency-Key": "k" * 16})
    body = await response.json()
    assert (response.status, body["error"]) == (401, "unauthorized")
    assert body["message"] == "Войдите, чтобы продолжить."


async def test_an_unknown_route_under_the_api_is_answered_in_the_language(client):
    response = await client.get("/api/no-such-thing", headers={"Accept-Language": "zh-Hans"})
    assert (response.status, await response.json()) == (404, {"error": "not_found", "message": "未找到。"})


async def test_a_socket_refusal_is_acked_in_the_sockets_language(client):
    sio = socketio.AsyncClient(reconnection=False)
    states: list[object] = []
    sio.on("state", lambda data: states.append(data))
    await sio.connect(str(client.make_url("/")), auth={"show": 1}, headers={"Accept-Language": "ru-RU,ru;q=0.9"},
                      transports=["websocket"], wait_timeout=10)
    try:
        reply = await sio.call("chat", {"text": "привет"}, timeout=10)
    finally:
        await sio.disconnect()
    assert reply == {"ok": False, "error": "unauthorized", "message": "Войдите, чтобы продолжить."}


@pytest.mark.parametrize("event", ["deal_buy", "bid", "giveaway_enter", "voucher_claim"])
async def test_a_selling_or_voucher_refusal_is_acked_in_the_sockets_language(client, event):
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(str(client.make_url("/")), auth={"show": 1}, headers={"Accept-Language": "ru-RU,ru;q=0.9"},
                      transports=["websocket"], wait_timeout=10)
    try:
        reply = await sio.call(event, {"deal_id": 1, "auction_id": 1, "giveaway_id": 1, "voucher_id": 1}, timeout=10)
    finally:
        await sio.disconnect()
    assert reply["ok"] is False and reply["error"] in ("unauthorized", "invalid"), reply
    assert reply["message"] != "" and not reply["message"].isascii(), reply  # Russian, not the English text


async def test_a_refused_socket_connection_is_told_why_in_its_language(client):
    sio = socketio.AsyncClient(reconnection=False)
    refused: list[object] = []
    sio.on("connect_error", lambda data: refused.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(str(client.make_url("/")), auth={"show": 1, "coview": "NOSUCHCODE"},
                          headers={"Accept-Language": "vi"}, transports=["websocket"], wait_timeout=10)
    # A co-view room is for signed-in members: refused, in Vietnamese, code unchanged.
    assert refused[0]["data"] == {"error": "unauthorized", "message": "Hãy đăng nhập để tiếp tục."}


@pytest.mark.parametrize("path", ["/", "/shows/1"])
async def test_committees_are_named_in_russian_on_russian_pages(client, path):
    html = await (await client.get(path, headers={"Accept-Language": "ru"})).text()
    for russian in ("Продукты питания и напитки", "Косметика и красота", "Медицинские и санитарные товары"):
        assert russian in html
    assert "Food &amp; Beverages" not in html.split('id="messages"')[0]


async def test_the_watch_pages_script_gets_the_committee_names_in_its_language(client):
    html = await (await client.get("/shows/1", headers={"Accept-Language": "zh-Hans"})).text()
    table = json.loads(re.search(r'<script type="application/json" id="messages">(.*?)</script>', html, re.S).group(1))
    assert table["committee:Seafood"] == "水产品"
    assert table["committee:Food & Beverages"] == "食品饮料"


@pytest.mark.asyncio(loop_scope="session")
async def test_the_watch_pages_script_names_committees_in_russian(site, new_context):
    # The drawer is drawn by watch.js from the segments' English names (committeeName).
    page = await watch_page(await new_context(locale="ru-RU"), site)
    await page.click("#products-toggle")
    chips = page.get_by_test_id("products-drawer").locator(".chip.committee")
    await chips.first.wait_for()
    assert await chips.all_text_contents() == [
        "Продукты питания и напитки", "Косметика и красота", "Медицинские и санитарные товары"]
