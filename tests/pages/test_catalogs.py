"""The message catalogs: every text of the pages is in them, translated into Korean,
Russian, Simplified Chinese and Vietnamese, with its placeholders intact, and the
templates hold no untranslated text. (Plural forms and each language's pages:
test_languages.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

WEB = Path(__file__).resolve().parents[2] / "web"
I18N = WEB / "i18n"
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")
TRANSLATED = ["ko", "ru", "zh_Hans", "vi"]  # catalog directories; English is the source


def _msgid(message) -> str:
    """A message's id; a plural one (singular, plural) by its singular, as extraction has it."""
    return message.id if isinstance(message.id, str) else message.id[0]


def _texts(value) -> tuple[str, ...]:
    """A msgid or msgstr as a tuple of texts (a plural one has several)."""
    return (value,) if isinstance(value, str) else tuple(value)


def _extracted() -> set[str]:
    with (I18N / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle, str(I18N / "babel.cfg"))
    ids = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(str(WEB), method_map, options_map):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def _catalog(name: str):
    path = I18N / "messages.pot" if name == "pot" else I18N / name / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return read_po(handle)


@pytest.fixture(scope="module")
def extracted() -> set[str]:
    return _extracted()


def test_the_template_catalog_is_up_to_date_with_the_sources(extracted):
    pot = {_msgid(m) for m in _catalog("pot") if m.id}
    assert pot == extracted, "run the pybabel extract/update commands in web/i18n/babel.cfg"


@pytest.mark.parametrize("locale", ["en", *TRANSLATED])
def test_each_catalog_has_exactly_the_extracted_messages(extracted, locale):
    ids = {_msgid(m) for m in _catalog(locale) if m.id}
    assert ids == extracted


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_message_has_a_translation(extracted, locale):
    catalog = _catalog(locale)
    untranslated = [m.id for m in catalog if m.id and (not all(_texts(m.string)) or m.fuzzy)]
    assert untranslated == []


@pytest.mark.parametrize("locale", TRANSLATED)
def test_translations_keep_their_placeholders(locale):
    wrong = [
        (m.id, text)
        for m in _catalog(locale) if m.id
        for text in _texts(m.string)
        if sorted(PLACEHOLDER.findall(_msgid(m))) != sorted(PLACEHOLDER.findall(text))
    ]
    assert wrong == []


def test_templates_hold_no_text_outside_gettext():
    # Strip comments, tags and expressions; what is left must be punctuation or symbols.
    leftovers = {}
    for path in sorted((WEB / "templates").glob("*.html")):
        text = path.read_text()
        text = re.sub(r"\{#.*?#\}", "", text, flags=re.S)
        text = re.sub(r"\{%.*?%\}|\{\{.*?\}\}", "", text, flags=re.S)
        text = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)
        text = re.sub(r"<[^>]*>", "", text, flags=re.S)
        words = re.findall(r"[^\W\d_]{2,}", text)
        if [w for w in words if w not in ("livemall",)]:
            leftovers[path.name] = words
    assert leftovers == {}


def test_pages_load_catalogs_from_po_at_start_up():
    from web.pages import load_translations

    assert load_translations("ko").gettext("Sign in") == "로그인"
    assert load_translations("en").gettext("Sign in") == "Sign in"
