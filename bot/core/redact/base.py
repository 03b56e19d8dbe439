"""What every part of the redactor shares: the masks, what a secret value looks like, span replacement."""

from __future__ import annotations

import math
import re
from collections import Counter

MASK = "***"
PRIVATE_KEY_MASK = "[private key redacted]"
JWT_MASK = "[jwt redacted]"

_LETTER = re.compile(r"[^\W\d_]")
_DIGIT_OR_SYMBOL = re.compile(r"[\d+/=_!@#$%^&*~]")
_LOWER = re.compile(r"[a-z]")
_UPPER = re.compile(r"[A-Z]")


def looks_secret(value: str) -> bool:
    """A value that reads like a credential rather than a word: long enough and mixed, or random-looking."""
    if len(value) < 8:
        return False
    if _LETTER.search(value) and _DIGIT_OR_SYMBOL.search(value):
        return True
    if _LOWER.search(value) and _UPPER.search(value, 1):
        return True
    return len(value) >= 16 and _entropy(value) >= 3.5


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _replace_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace non-overlapping (start, end, replacement) spans; overlapping later spans are dropped."""
    if not spans:
        return text
    out, last = [], 0
    for start, end, replacement in sorted(spans):
        if start < last:
            continue
        out.append(text[last:start])
        out.append(replacement)
        last = end
    out.append(text[last:])
    return "".join(out)
