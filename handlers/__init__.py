"""What Slack and webhooks call. Each module has `register(bolt_app, runtime)` for its Slack
listeners and may have `routes(runtime) -> list[aiohttp.web.RouteDef]` for its webhooks."""
from __future__ import annotations

import importlib

HANDLER_MODULES = ("command", "actions", "alerts")


def _modules():
    for name in HANDLER_MODULES:
        try:
            yield importlib.import_module(f"handlers.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"handlers.{name}":
                raise


def register_all(app, runtime) -> None:
    for module in _modules():
        module.register(app, runtime)


def register_routes(web_app, runtime) -> None:
    for module in _modules():
        if hasattr(module, "routes"):
            web_app.add_routes(module.routes(runtime))
