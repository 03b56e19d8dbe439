"""The redaction steps in the order they run, each with what a text must contain for it to find anything.

SQL comes after the steps that mask words: a token masked right before `$$` changes how `$$` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.core.redact import commands, names, pem, sql, tokens, urls
from bot.core.redact.prefilter import Prefilter, Trigger
from bot.core.redact.tokens import COMPILED_FORMATS


@dataclass(frozen=True)
class Step:
    name: str
    trigger: Trigger
    apply: Callable[[str], str]


def _jwts(text: str) -> str:
    return tokens.JWT.sub(tokens.mask_jwt, text)


def _basic(text: str) -> str:
    return tokens.BASIC.sub(tokens.mask_basic, text)


_FORMAT_STEPS = tuple(
    Step(f"token: {c.format.name}", Trigger(c.format.words, (c.format.shape,) if c.format.shape else ()), c.mask)
    for c in COMPILED_FORMATS
)
STEPS: tuple[Step, ...] = (
    Step("private keys", Trigger(("private key",), (pem.FULL_LINE_SHAPE,)), pem.mask_private_keys),
    Step("URL userinfo", Trigger(urls.SCHEME_SHAPES), urls.mask_url_userinfo),
    Step("percent-encoded URL userinfo", Trigger(shapes=(urls.ENCODED_SHAPE,)), urls.mask_encoded_userinfo),
    *_FORMAT_STEPS,
    Step("JWTs", Trigger(("eyj",), (tokens.JWT_SHAPE,)), _jwts),
    Step("Basic credentials", Trigger(("basic",)), _basic),
    Step("cookie headers", Trigger(("cookie",)), commands.mask_cookies),
    Step("secret flags", Trigger(names.NAME_HINTS), commands.mask_secret_flags),
    Step("-p password", Trigger(("-p",)), commands.mask_attached_password),
    Step("password flags of programs", Trigger(tuple(commands.PROGRAM_PASSWORD_FLAGS)), commands.mask_program_password),
    Step("-u user:password", Trigger(("-u", "--user")), commands.mask_user_password),
    Step("SQL", Trigger(sql.TRIGGER_WORDS, sql.TRIGGER_SHAPES), sql.scrub_sql),
    Step("secret-named values", Trigger(names.NAME_HINTS), names.mask_key_values),
)
PREFILTER = Prefilter({step.name: step.trigger for step in STEPS})


def run(text: str, *, every_step: bool = False) -> str:
    """One round of the steps that may find something (every step with `every_step`, for tests)."""
    wanted = None if every_step else PREFILTER.steps_for(text)
    for step in STEPS:
        if wanted is None or step.name in wanted:
            text = step.apply(text)
    return text
