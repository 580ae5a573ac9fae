"""The five languages of the pages (English, Korean, Russian, Simplified Chinese,
Vietnamese): every message the sources use is translated in every catalog, plural forms
follow each language's rules, and each page renders in each language with numbers, dates
and money written the way that language writes them (money in the product's currency)."""

from __future__ import annotations

import json
import re
from datetime import timezone
from pathlib import Path

import pytest
from babel.dates import format_datetime
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from sqlalchemy import select

from orders.models import Show
from tests.conftest import login
from tests.pages.conftest import open_page
from web.appkeys import DB
from web.pages import JS_MESSAGES, JS_PLURALS, LOCALES, catalog_dir, load_translations, negotiate, plural_texts

WEB = Path(__file__).resolve().parents[2] / "web"
TRANSLATED = [locale for locale in LOCALES if locale != "en"]
SCHEDULE_TITLE = {
    "en": "Live shopping schedule",
    "ko": "라이브 쇼핑 편성표",
    "ru": "Расписание прямых эфиров",
    "zh-Hans": "直播购物节目表",
    "vi": "Lịch livestream bán hàng",
}
# Each language in its own words, as the switch shows it.
OWN_NAMES = {"en": "English", "ko": "한국어", "ru": "русский", "zh-Hans": "中文 (简体)", "vi": "Tiếng Việt"}
# The demo's "Mask Production Line": USD 85,000.00 (8,500,000 cents), as each language writes it.
MASK_LINE = {
    "en": "$85,000.00",
    "ko": "US$85,000.00",
    "ru": "85 000,00 $",
    "zh-Hans": "US$85,000.00",
    "vi": "85.000,00 US$",
}


def _spaces(text: str) -> str:
    # CLDR separates groups and currency symbols with no-break or narrow no-break spaces.
    return text.replace("\u202f", " ").replace("\xa0", " ")


def _used_messages() -> dict[str, str | tuple[str, str]]:
    """The messages the templates, web/pages.py and web/mail_texts.py use (by singular),
    extracted as web/i18n/babel.cfg says: from the sources, not from messages.pot."""
    with (WEB / "i18n" / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle, str(WEB / "i18n" / "babel.cfg"))
    used: dict[str, str | tuple[str, str]] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(str(WEB), method_map, options_map):
        used[message if isinstance(message, str) else message[0]] = message
    return used


def _catalog(locale: str):
    with (catalog_dir(locale) / "messages.po").open("rb") as handle:
        return read_po(handle)


# --- catalogs -----------------------------------------------------------------------

@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_message_the_sources_use_is_translated(locale):
    catalog = _catalog(locale)
    missing = []
    for key in _used_messages():
        entry = catalog.get(key)
        texts = [] if entry is None else [entry.string] if isinstance(entry.string, str) else list(entry.string)
        if entry is None or entry.fuzzy or not texts or not all(texts):
            missing.append(key)
    assert missing == [], f"untranslated in {locale}: regenerate messages.pot, pybabel update, translate"


@pytest.mark.parametrize(("locale", "forms"), [("ru", 3), ("ko", 1), ("zh-Hans", 1), ("vi", 1), ("en", 2)])
def test_each_catalog_declares_its_languages_plural_forms(locale, forms):
    catalog = _catalog(locale)
    assert catalog.num_plurals == forms
    plural_entries = [m for m in catalog if m.id and not isinstance(m.id, str)]
    assert plural_entries, "the pages have messages with a count"
    if locale != "en":  # English is the source: its catalog is empty on purpose
        assert all(len(m.string) == forms for m in plural_entries)


@pytest.mark.parametrize(
    ("n", "seconds", "products"),
    [
        (1, "1 секунда", "1 товар"),
        (2, "2 секунды", "2 товара"),
        (5, "5 секунд", "5 товаров"),
        (11, "11 секунд", "11 товаров"),
        (21, "21 секунда", "21 товар"),
        (22, "22 секунды", "22 товара"),
    ],
)
def test_russian_counts_take_the_right_plural_form(n, seconds, products):
    russian = load_translations("ru")
    assert russian.ngettext("%(num)s second", "%(num)s seconds", n) % {"num": n} == seconds
    assert russian.ngettext("%(num)s product", "%(num)s products", n) % {"num": n} == products


def test_scripts_get_each_russian_plural_category():
    watching = plural_texts(load_translations("ru"), "ru", *JS_PLURALS["viewers"])
    assert watching == {"one": "{n} зритель", "few": "{n} зрителя", "many": "{n} зрителей",
                        "other": "{n} зрителей"}
    assert plural_texts(load_translations("zh-Hans"), "zh-Hans", *JS_PLURALS["viewers"]) == {"other": "{n} 人在看"}


# --- choosing the language -------------------------------------------------------------

@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("ru-RU,ru;q=0.9,en-US;q=0.8", "ru"),
        ("zh-CN,zh;q=0.9", "zh-Hans"),
        ("zh-Hans-CN", "zh-Hans"),
        ("zh-TW,en;q=0.5", "zh-Hans"),  # Simplified reads better than English to most
        ("vi-VN,vi;q=0.9,en;q=0.8", "vi"),
        ("de-DE,de;q=0.9,ru;q=0.3,en;q=0.2", "ru"),
        ("de-DE", "en"),
    ],
)
def test_accept_language_reaches_the_new_languages(header, locale):
    assert negotiate(header) == locale


@pytest.mark.parametrize("locale", LOCALES)
async def test_the_switch_sets_each_language_and_names_them_in_their_own_words(client, locale):
    switched = await client.get(f"/lang/{locale}?next=/", headers={"Accept-Language": "ko"}, allow_redirects=False)
    assert switched.status == 303 and switched.headers["Location"] == "/"
    html = await (await client.get("/", headers={"Accept-Language": "ko"})).text()
    assert f'<html lang="{locale}">' in html
    assert f"<h1>{SCHEDULE_TITLE[locale]}</h1>" in html
    for code, name in OWN_NAMES.items():
        assert re.search(rf'<a href="/lang/{code}\?next=/" lang="{code}"[^>]*>{re.escape(name)}</a>', html)


async def test_an_unknown_language_code_changes_nothing(client):
    await client.get("/lang/xx?next=/", allow_redirects=False)
    assert "<h1>라이브 쇼핑 편성표</h1>" in await (await client.get("/", headers={"Accept-Language": "ko"})).text()


# --- pages in each language -----------------------------------------------------------

@pytest.mark.parametrize("locale", LOCALES)
async def test_the_schedule_writes_dates_for_the_language(client, locale):
    async with client.app[DB].session() as session:
        show = await session.scalar(select(Show).order_by(Show.id).limit(1))
    html = await (await client.get("/", headers={"Accept-Language": locale})).text()
    # The fallback text under each <time> (the script rewrites it in the viewer's zone).
    written = format_datetime(show.scheduled_at, "medium", tzinfo=timezone.utc, locale=locale.replace("-", "_"))
    assert f"{written} UTC</time>" in html
    # ... in that language's own pattern (a month name, 오전/오후, г., 年, thg).
    pattern = {"en": r"[A-Z][a-z]{2} \d", "ko": "오[전후]", "ru": r"\d{4} г\.", "zh-Hans": "年", "vi": "thg"}[locale]
    assert re.search(pattern, _spaces(written)), written


@pytest.mark.parametrize("locale", LOCALES)
async def test_admin_prices_and_counts_are_written_for_the_language(client, locale):
    await login(client, "admin@livemall.example")
    html = await (await client.get("/admin", headers={"Accept-Language": locale})).text()
    row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*Mask Production Line(?:(?!</tr>).)*</tr>", html, re.S).group(0)
    prices = re.findall(r'<td class="product-price">([^<]*)</td>', row)
    assert [_spaces(p) for p in prices] == [MASK_LINE[locale]]
    # The demo's third segment has three products in its line-up, counted in the language.
    three = {"en": "3 products", "ko": "상품 3개", "ru": "3 товара", "zh-Hans": "3 件商品", "vi": "3 sản phẩm"}
    assert f", {three[locale]})</span>" in html
    scheduled = {"en": "Scheduled", "ko": "예정", "ru": "Запланирован", "zh-Hans": "未开始", "vi": "Đã lên lịch"}
    assert f"<td>{scheduled[locale]}</td>" in html  # a show's status, in words


@pytest.mark.parametrize(("locale", "thirty"), [("en", "30 seconds"), ("ru", "30 секунд"), ("zh-Hans", "30 秒"),
                                                  ("vi", "30 giây"), ("ko", "30초")])
async def test_the_studio_counts_seconds_in_the_language(client, locale, thirty):
    await login(client, "host@livemall.example")
    html = await (await client.get("/studio/1", headers={"Accept-Language": locale})).text()
    assert thirty in html


@pytest.mark.parametrize("locale", LOCALES)
async def test_the_scripts_get_their_messages_in_the_language(client, locale):
    html = await (await client.get("/shows/1", headers={"Accept-Language": locale})).text()
    table = json.loads(re.search(r'<script type="application/json" id="messages">(.*?)</script>', html, re.S).group(1))
    english = locale == "en"
    assert (table["sold_out"] == "Sold out") is english
    assert set(table["viewers"]) >= {"other"}


# --- in the browser ---------------------------------------------------------------------

@pytest.mark.asyncio(loop_scope="session")
async def test_a_russian_browser_gets_russian_pages_and_switches_to_chinese_and_vietnamese(site, new_context):
    page = await open_page(await new_context(locale="ru-RU", timezone_id="Europe/Moscow"), site.at("/"))
    assert await page.locator("h1").text_content() == SCHEDULE_TITLE["ru"]
    # The page's script rewrote each <time> in Russian, in the viewer's zone.
    when = await page.locator("time[data-format]").first.text_content()
    assert re.search(r"(янв|фев|мар|апр|мая|июн|июл|авг|сент|окт|нояб|дек)", when), when
    counts = await page.evaluate(
        "import('/static/js/page.js').then(m => [1, 2, 5, 21, 1500].map(n => m.t('viewers', {n})))"
    )
    assert [_spaces(c) for c in counts] == ["1 зритель", "2 зрителя", "5 зрителей", "21 зритель", "1 500 зрителей"]
    money = await page.evaluate("import('/static/js/page.js').then(m => m.formatMoney(8500000, 'USD'))")
    assert _spaces(money) == "85 000,00 $"

    await page.locator('[data-lang="zh-Hans"]').click()
    await page.wait_for_url(site.at("/"))
    assert await page.locator("h1").text_content() == SCHEDULE_TITLE["zh-Hans"]
    assert await page.locator("html").get_attribute("lang") == "zh-Hans"
    assert "年" in await page.locator("time[data-format]").first.text_content()

    await page.locator('[data-lang="vi"]').click()
    await page.wait_for_url(site.at("/"))
    assert await page.locator("h1").text_content() == SCHEDULE_TITLE["vi"]
    money = await page.evaluate("import('/static/js/page.js').then(m => m.formatMoney(8500000, 'USD'))")
    assert _spaces(money) == "85.000,00 US$"


async def test_registration_offers_countries_by_name_in_the_language(client):
    russian = await (await client.get("/register", headers={"Accept-Language": "ru"})).text()
    assert '<option value="RU">Россия</option>' in russian and '<option value="VN">Вьетнам</option>' in russian
    chinese = await (await client.get("/register", headers={"Accept-Language": "zh-CN"})).text()
    assert '<option value="KR">韩国</option>' in chinese
    vietnamese = await (await client.get("/register", headers={"Accept-Language": "vi"})).text()
    names = re.findall(r'<option value="[A-Z]{2}">([^<]*)</option>', vietnamese)
    # By the letter, accents with their letter: Ấn Độ among the A's, not after Z.
    assert names.index("Ấn Độ") < names.index("Bỉ") and names[-1] != "Ấn Độ"


async def test_the_quote_forms_destination_offers_countries_by_name_in_the_language(client):
    html = await (await client.get("/shows/1", headers={"Accept-Language": "ru"})).text()
    assert re.search(r'<input name="destination_country"[^>]*list="country-list"', html)
    assert '<option value="CN">Китай</option>' in html


def test_every_message_key_the_scripts_use_is_rendered_into_the_page():
    keys = set()
    for script in (WEB / "static" / "js").glob("*.js"):
        keys |= set(re.findall(r"\bt\(\s*'(\w+)'", script.read_text()))
    assert keys, "the scripts look their texts up with t('key')"
    assert sorted(keys - set(JS_MESSAGES) - set(JS_PLURALS)) == []


@pytest.mark.parametrize(
    ("header", "subject", "within"),
    [
        ("en", "Reset your livemall password", "within 60 minutes"),
        ("ko-KR", "livemall 비밀번호 재설정", "60분 안에"),
        ("ru-RU", "Сброс пароля livemall", "в течение 60 минут,"),
        ("zh-CN", "重置你的 livemall 密码", "请在 60 分钟内"),
        ("vi-VN", "Đặt lại mật khẩu livemall", "trong vòng 60 phút"),
    ],
)
async def test_the_reset_mail_is_in_the_language_of_the_page_that_asked(client, header, subject, within):
    from aiohttp.test_utils import make_mocked_request

    from web.mail_texts import reset_password_mail

    request = make_mocked_request("POST", "/api/auth/password-reset", headers={"Accept-Language": header},
                                  app=client.app)
    link = "https://shop.example/reset-password#token=abc"
    sent_subject, body = reset_password_mail(request, "Ольга <o@x>", link, 3600)
    assert sent_subject == subject
    assert within in body and f"\n\n{link}\n\n" in body and "Ольга <o@x>" in body  # plain text: not escaped


def test_no_script_message_key_is_given_twice():
    # A dict literal keeps the last of two equal keys without a word: read the source.
    import ast

    keys = []
    for node in ast.walk(ast.parse((WEB / "pages.py").read_text())):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) in ("JS_MESSAGES", "JS_PLURALS"):
            keys += [key.value for key in node.value.keys]
    assert len(keys) == len(JS_MESSAGES) + len(JS_PLURALS) and len(set(keys)) == len(keys)
