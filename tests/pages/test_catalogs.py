"""The message catalogs: every text of the pages is in them, translated into Korean,
with its placeholders intact, and the templates hold no untranslated text."""

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
    pot = {m.id for m in _catalog("pot") if m.id}
    assert pot == extracted, "run the pybabel extract/update commands in web/i18n/babel.cfg"


@pytest.mark.parametrize("locale", ["ko", "en"])
def test_each_catalog_has_exactly_the_extracted_messages(extracted, locale):
    ids = {m.id for m in _catalog(locale) if m.id}
    assert ids == extracted


def test_every_message_has_a_korean_translation(extracted):
    catalog = _catalog("ko")
    untranslated = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
    assert untranslated == []


def test_translations_keep_their_placeholders():
    wrong = [
        (m.id, m.string)
        for m in _catalog("ko")
        if m.id and sorted(PLACEHOLDER.findall(m.id)) != sorted(PLACEHOLDER.findall(m.string))
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
