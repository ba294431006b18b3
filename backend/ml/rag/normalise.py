"""Fold text to a canonical form before safety patterns look at it.

Obfuscation the dose filter must see through: full-width and other compatibility characters
(NFKC), invisible format characters, Cyrillic/Greek letters that look Latin ("amoxicilіn" with
a Cyrillic і), and letters standing in for digits ("5OO mg"). Only used for matching: the text
a user sees is never rewritten by this.
"""

from __future__ import annotations

import re
import unicodedata

# Letters that render like Latin ones (Cyrillic, Greek, Armenian and a few Latin variants).
_HOMOGLYPHS = str.maketrans(
    {
        **dict(zip("аеёіїјоорсхуԁһӏԛԝѕвкмнт", "aeeiijoopcxydhlqwsbkmht", strict=True)),
        **dict(zip("АВЕЁІЇЈКМНОРСТХУЅ", "ABEEIIJKMHOPCTXYS", strict=True)),
        **dict(zip("αβεικνορτυχζηο", "abeiknoptuxzno", strict=True)),
        **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX", strict=True)),
        "μ": "u",  # NFKC turns the micro sign into Greek mu: "μg" reads as "ug"
        "օ": "o",
        "ս": "u",
        "ı": "i",
        "ȷ": "j",
    }
)
# Runs of digits and digit-like letters not glued to a word before them ("5OO", "l0", "2O0mg"):
# the letters become digits when the run holds a real digit. A trailing l/I stays a letter
# ("5l" is five litres).
_DIGITISH = re.compile(r"(?<![^\W\d_])[OoIl|]*[0-9][0-9OoIl|]*")
_DIGIT_FOR = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1", "|": "1"})


def _digits(match: re.Match[str]) -> str:
    run = match.group(0)
    body = run.rstrip("lI|")
    return body.translate(_DIGIT_FOR) + run[len(body) :]


def _is_invisible(ch: str) -> bool:
    return unicodedata.category(ch) == "Cf" or ch == "\u00ad"


def fold(text: str, invisible: str = "") -> str:
    """NFKC, invisible characters replaced by `invisible`, homoglyphs to Latin, digit
    look-alikes to digits."""
    text = unicodedata.normalize("NFKC", text)
    if any(_is_invisible(ch) for ch in text):
        text = "".join(invisible if _is_invisible(ch) else ch for ch in text)
    text = text.translate(_HOMOGLYPHS)
    return _DIGITISH.sub(_digits, text)


def folded_variants(text: str) -> tuple[str, ...]:
    """The folded text; when it hides invisible characters, also a reading with each one as a
    space (one may split a word, "do\u200bse", or stand for a space, "how\u200bmany")."""
    first = fold(text)
    if not any(_is_invisible(ch) for ch in text):
        return (first,)
    return first, fold(text, invisible=" ")
