"""A chat message must have visible text: one made only of spaces, zero-width characters,
Hangul fillers or blank braille is refused (issue 14, item 16), while Korean, Russian,
Chinese and emoji — ZWJ sequences included — arrive exactly as typed."""

from __future__ import annotations

import pytest

from orders.visible_text import has_visible_text, refused_character
from tests.rooms.conftest import BUYER, HOST

INVISIBLE = {
    "zero-width": "\u200b\u200c\u200d\u2060\ufeff",
    "hangul-filler": "\u3164\u3164",
    "blank-braille": "\u2800\u2800\u2800",
    "spaces-and-joiners": " \u00a0\u3000\u200b ",
    "variation-selector": "\ufe0f",
    "bidi-marks": "\u200e\u200f\u202e",
}
VISIBLE = {
    "korean": "안녕하세요 여러분",
    "russian": "Привет всем",
    "chinese": "大家好",
    "emoji": "👍🏽🔥",
    "zwj-family": "👨‍👩‍👧‍👦",
    "zwj-in-text": "우리 가족 👨‍👩‍👧 최고",
}


@pytest.fixture
async def room(start):
    return await start(chat_rate_count=100)


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
async def test_a_message_of_invisible_characters_only_is_refused(room, text):
    buyer = await room.join(BUYER)
    ack = await buyer.call("chat", {"text": text})
    assert ack["ok"] is False and ack["error"] == "invalid"


async def test_messages_in_any_script_and_emoji_sequences_arrive_as_typed(room):
    buyer = await room.join(BUYER)
    host = await room.join(HOST)
    for text in VISIBLE.values():
        ack = await buyer.call("chat", {"text": text})
        assert ack["ok"], ack
        message = await host.next("chat", lambda m, i=ack["id"]: m["id"] == i)
        assert message["text"] == text


@pytest.mark.parametrize("name", [
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f Fiona",  # the Scottish flag's tag sequence
    "क्\u200dष Devi",  # ZWJ after a virama (Devanagari)
    "می\u200cخواهم",  # ZWNJ between joining letters (Persian)
    "❤️ 1️⃣ 👩🏽‍💻",  # variation selectors, a keycap, a skin tone inside a ZWJ sequence
], ids=["flag-tags", "virama-zwj", "persian-zwnj", "selectors"])
def test_invisible_characters_that_a_script_or_emoji_needs_are_allowed_in_names(name):
    assert refused_character(name) is None and has_visible_text(name)


@pytest.mark.parametrize("name,found", [
    ("\U000e0067\U000e007f Fiona", "\U000e0067"),  # tag characters outside a flag
    ("ad\u200dmin", "\u200d"),  # a ZWJ between Latin letters joins nothing
    ("\u200d👍", "\u200d"),
], ids=["stray-tags", "zwj-in-latin", "leading-zwj"])
def test_the_same_characters_out_of_place_are_refused(name, found):
    assert refused_character(name) == found
