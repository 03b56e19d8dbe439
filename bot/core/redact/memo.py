"""Redaction remembered: the same text redacted once, for as long as the registered secrets stay the same.

An alert storm repeats the same few texts (alert names, severities, teams, URLs, group keys) in every
notification; redacting each of them once per process instead of once per notification is most of the
redactor's cost gone. `redact` is a pure function of the text and the registered secrets, so a result
stays right until a secret is registered (`_secrets.generation` moves on), and then all are forgotten."""

from __future__ import annotations

from collections.abc import Callable

from bot.core.redact.held import _secrets


class RedactMemo:
    """`memo(text)` is `redact(text)`, remembered for texts up to `longest` characters, `size` of them.

    For the event loop's own use: a result computed while another thread registers a secret could be
    remembered after the registration forgot the others."""

    def __init__(self, redact: Callable[[str], str], size: int = 4096, longest: int = 256) -> None:
        self._redact = redact
        self.size = size
        self.longest = longest  # long texts rarely repeat, and would make the memory they hold unbounded
        self._known: dict[str, str] = {}
        self._generation = _secrets.generation

    def __call__(self, text: str) -> str:
        self._forget_if_stale()
        redacted = self._known.get(text)
        return self._remember(text) if redacted is None else redacted

    def values(self, mapping: dict[str, str]) -> dict[str, str]:
        """The mapping with every value redacted (labels, annotations: their names are kept)."""
        self._forget_if_stale()
        known = self._known
        redacted = {}
        for name, value in mapping.items():
            text = known.get(value)
            redacted[name] = self._remember(value) if text is None else text
        return redacted

    def _forget_if_stale(self) -> None:
        if self._generation != _secrets.generation:
            self._known.clear()
            self._generation = _secrets.generation

    def _remember(self, text: str) -> str:
        redacted = self._redact(text)
        if len(text) <= self.longest:
            if len(self._known) >= self.size:
                self._known.clear()  # the texts that repeat come back at once; the one-offs do not
            self._known[text] = redacted
        return redacted
