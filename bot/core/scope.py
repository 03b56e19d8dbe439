"""Where a proposal came from, kept with its approval so the same check can be run again on the same
target after the action: the check's name, the verb's parsed arguments and the alert being triaged,
as JSON (the approval row stores it), and back."""

from __future__ import annotations

import dataclasses
import importlib
from datetime import datetime
from typing import Any

from bot.core.registry import NO_ARGS, Args


def scope_of(check_name: str, ctx: Any) -> dict[str, Any]:
    """The JSON scope of a check run with `ctx` (its `args` and `alert`, when it has them)."""
    args = getattr(ctx, "args", NO_ARGS)
    scope: dict[str, Any] = {"check": check_name, "args_type": "", "args": {}}
    if isinstance(args, Args) and dataclasses.is_dataclass(args) and not isinstance(args, type):
        scope["args_type"] = f"{type(args).__module__}:{type(args).__qualname__}"
        scope["args"] = dataclasses.asdict(args)
    alert = getattr(ctx, "alert", None)
    if alert is not None:
        since: datetime | None = alert.since
        scope["alert"] = {
            "names": list(alert.names),
            "labels": dict(alert.labels),
            "since": since.isoformat() if since else None,
        }
    return scope


def args_of(scope: dict[str, Any]) -> Args:
    """The verb's arguments a scope recorded; NO_ARGS when there were none or their kind is gone."""
    module_name, _, name = str(scope.get("args_type") or "").partition(":")
    if module_name.split(".")[0] not in ("bot", "runbooks"):  # only the bot's own kinds of arguments
        return NO_ARGS
    try:
        kind = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return NO_ARGS
    if not (isinstance(kind, type) and issubclass(kind, Args) and dataclasses.is_dataclass(kind)):
        return NO_ARGS
    try:
        return kind(**dict(scope.get("args") or {}))
    except TypeError:  # the arguments changed shape since it was proposed
        return NO_ARGS
