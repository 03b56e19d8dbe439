"""The documented surface and the code agree: every setting and every verb is in README.md."""
from __future__ import annotations

from pathlib import Path

from bot.registry import load_runbooks
from bot.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_documented():
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in README]
    assert missing == []


def test_every_verb_is_documented():
    import handlers.actions  # noqa: F401  (builtin verbs register on import)
    import handlers.alerts  # noqa: F401
    from handlers.command import BUILTIN_VERBS

    verbs = [*load_runbooks().verbs, *BUILTIN_VERBS]
    missing = [verb for verb in verbs if f"| `{verb}" not in README]
    assert missing == []


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```")[1]
    assert "scripts/demo" in first_block and "scripts/test" in first_block
