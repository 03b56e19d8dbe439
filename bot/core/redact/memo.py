"""Redaction remembered: the same text redacted once, for as long as the registered secrets stay the same.

An alert storm repeats the same few texts (alert names, severities, teams, URLs, group keys) in every
notification; redacting each of them once per process instead of once per notification is most of the
redactor's cost gone. `redact` is a pure function of the text and the registered secrets, so a result
stays right until a secret is registered (`_secrets.generation` moves on), and then all are forgotten."""

from __future__ import annotations

from collections.abc import Callable

from bot.core.redact.held import _secrets


class RedactMemo:
    """`memo(text)` is `redact(text)`, remembered for texts up to `longest` characters, `size` of them."""

    def __init__(self, redact: Callable[[str], str], size: int = 4096, longest: int = 256) -> None:
        self._redact = redact
        self.size = size
        self.longest = longest  # long texts rarely repeat, and would make the memory they hold unbounded
        self._known: dict[str, str] = {}
        self._generation = _secrets.generation

    def __call__(self, text: str) -> str:
        if self._generation != _secrets.generation:
            self._known.clear()
            self._generation = _secrets.generation
        redacted = self._known.get(text)
        if redacted is None:
            redacted = self._redact(text)
            if len(text) <= self.longest:
                if len(self._known) >= self.size:
                    self._known.clear()  # the texts that repeat come back at once; the one-offs do not
                self._known[text] = redacted
        return redacted
