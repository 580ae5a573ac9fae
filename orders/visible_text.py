"""What text shown to other people may contain: names free of control and format
characters, and messages with something visible in them.

Names are shown beside every chat line, order and report, so a name must not carry what
changes how the text around it reads or hides what it is: terminal escapes and CR/LF
(Cc), bidi overrides and isolates, zero-width spaces and joiners, soft hyphens and
other format characters (Cf), line and paragraph separators (Zl, Zp), private-use and
surrogate code points, and the Unicode "default ignorable" characters that draw nothing
(the Hangul fillers U+3164/U+115F, variation selectors out of place, tag characters).

Writing systems and emoji that need an invisible character keep working, because only
the uses Unicode defines are let through (as IDNA's ContextJ rules and the emoji
specification, UTS #51, define them):
- ZWJ inside an emoji sequence (👨‍👩‍👧, 🏳️‍🌈), and ZWJ/ZWNJ after a virama (Indic scripts);
- ZWNJ between two joining letters (Persian "می‌خواهم");
- a variation selector after a visible character (❤️);
- tag characters inside a flag tag sequence (🏴󠁧󠁢󠁳󠁣󠁴󠁿).

The `regex` module supplies the Unicode properties (Default_Ignorable_Code_Point,
Extended_Pictographic, joining types, virama) that the standard library's `re` and
`unicodedata` do not, from a newer Unicode version than the interpreter's.
"""

from __future__ import annotations

import regex

from orders.errors import Invalid


class NameCharacters(Invalid):
    """A name with a control, format or invisible character, or nothing visible."""

    code = "name_characters"


# The permitted uses of otherwise refused characters, removed before the check (a flag
# tag sequence leaves its black flag).
_FLAG_TAGS = regex.compile(r"(?<=\U0001F3F4)[\U000E0020-\U000E007E]+\U000E007F")
_PERMITTED = (
    _FLAG_TAGS,
    regex.compile(r"(?<=[\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F])\u200D(?=\p{Extended_Pictographic})"),
    regex.compile(r"(?<=\p{ccc=Virama})[\u200C\u200D]"),
    regex.compile(
        r"(?<=[\p{Joining_Type=Dual_Joining}\p{Joining_Type=Left_Joining}])\u200C"
        r"(?=[\p{Joining_Type=Dual_Joining}\p{Joining_Type=Right_Joining}])"
    ),
    regex.compile(r"(?<=[^\s\p{C}\p{Z}\p{Default_Ignorable_Code_Point}])[\uFE00-\uFE0F\U000E0100-\U000E01EF]"),
)
_REFUSED_IN_NAMES = regex.compile(
    r"[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]"
)
# A character that draws something: a letter, digit, punctuation or symbol that is not
# default-ignorable (the Hangul fillers are letters that draw nothing) nor the blank
# braille pattern U+2800, a favourite of "empty" messages.
_VISIBLE = regex.compile(r"[\p{L}\p{N}\p{P}\p{S}--[\p{Default_Ignorable_Code_Point}\u2800]]", regex.V1)


def refused_character(text: str) -> str | None:
    """The first character a name may not hold, or None."""
    for permitted in _PERMITTED:
        text = permitted.sub("", text)
    found = _REFUSED_IN_NAMES.search(text)
    return found.group() if found else None


def has_visible_text(text: str) -> bool:
    return _VISIBLE.search(text) is not None


def describe(char: str) -> str:
    return f"U+{ord(char):04X}"


def check_name(name: str, field: str = "name") -> str:
    """The name as given, or NameCharacters (422) naming the character at fault."""
    char = refused_character(name)
    if char is not None:
        raise NameCharacters(
            f"a name may not contain control, format or invisible characters (found {describe(char)})",
            field=field,
        )
    if not has_visible_text(name):
        raise NameCharacters("a name needs at least one visible character", field=field)
    return name
