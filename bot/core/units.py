"""Numbers as an on-call engineer reads them."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"([0-9]{1,9})([smhdw])")  # ASCII digits: \d takes "٣" and int() with it
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def parse_duration(text: str, *, maximum: int | None = None, what: str = "duration") -> int:
    """Seconds in "90s", "30m", "4h", "7d", "2w" or a sum such as "1h30m"; ValueError says what is wrong."""
    cleaned = text.strip().lower().replace(" ", "")
    shown = repr(text if len(text) <= 40 else text[:39] + "…")
    if not cleaned:
        raise ValueError("give a duration such as 30m, 4h or 7d")
    if cleaned.isdigit():
        raise ValueError(f"{shown} has no unit: write e.g. {cleaned}m, {cleaned}h or {cleaned}d")
    parts = _DURATION_PART.findall(cleaned)
    if not parts or "".join(number + unit for number, unit in parts) != cleaned:
        raise ValueError(f"{shown} is not a duration: use s, m, h, d or w, e.g. 30m, 4h, 7d")
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds < 1:
        raise ValueError(f"a {what} must last at least one second")
    if maximum is not None and seconds > maximum:
        raise ValueError(f"{shown} is longer than the longest {what} allowed ({short_duration(maximum)})")
    return seconds


def short_duration(seconds: int) -> str:
    """The shortest exact form: 604800 -> "7d", 5400 -> "90m"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 address', '2 addresses': the count and the noun that agrees with it."""
    return f"{count} {word if count == 1 else many or word + 's'}"
