"""Parsers for what people and other systems type at the bot, that no input can surprise.

`str.isdigit()` and `int()` take far more than ASCII digits ("²", "①", "٩", "1_000", " 7 "); these
take only what they say, bounded in length before any conversion, and raise UsageError (whose
message is shown to the asker) for anything else.
"""

from __future__ import annotations

import re
import unicodedata

from bot.core.registry import UsageError

ASCII_INT = re.compile(r"-?[0-9]{1,19}")  # a 64-bit integer at most; the range check does the rest
ASCII_DECIMAL = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?")
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")
SLACK_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,30}")
MAX_SHOWN = 20
# tab, newline and carriage return are whitespace; every other control character is refused
ALLOWED_CONTROLS = frozenset("\t\n\r")


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """How a refused value is quoted back: short, printable, in backticks."""
    clipped = text if len(text) <= limit else text[: limit - 1] + "…"
    printable = "".join(c if c.isprintable() else "?" for c in clipped).replace("`", "'")
    return f"`{printable}`"


def is_ascii_digits(text: object, max_digits: int = 18) -> bool:
    """Whether `text` is 1 to `max_digits` ASCII digits (what `str.isdigit()` is mistaken for)."""
    return isinstance(text, str) and 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def ascii_int(text: str, *, min: int, max: int, what: str) -> int:
    """`text` as an integer written in ASCII digits (a leading `-` only when `min` < 0), within [min, max]."""
    if not isinstance(text, str) or not ASCII_INT.fullmatch(text) or (text.startswith("-") and min >= 0):
        raise UsageError(f"{what} must be an integer, not {shown(str(text))}")
    value = int(text)
    if not min <= value <= max:
        raise UsageError(f"{what} must be between {min} and {max}")
    return value


def ascii_decimal(text: str, *, min: float, max: float, what: str) -> float:
    """`text` as a non-negative decimal number in ASCII digits ("5", "0.3"), within [min, max]."""
    if not isinstance(text, str) or not ASCII_DECIMAL.fullmatch(text):
        raise UsageError(f"{shown(str(text))} is not {what}")
    value = float(text)
    if not min <= value <= max:
        raise UsageError(f"{what} must be from {min:g} to {max:g}")
    return value


def is_slack_user_id(value: object) -> bool:
    """A Slack user id (U…/W…, upper-case letters and digits); never a name, a mention or an empty string."""
    return isinstance(value, str) and SLACK_USER_ID.fullmatch(value) is not None


def is_slack_channel_id(value: object) -> bool:
    return isinstance(value, str) and SLACK_CHANNEL_ID.fullmatch(value) is not None


def control_character(text: str) -> str | None:
    """The first control character of `text` (NUL, ESC, DEL, C1…) other than tab and line breaks, or None."""
    for char in text:
        if char not in ALLOWED_CONTROLS and unicodedata.category(char) in ("Cc", "Cs"):
            return char
    return None
