"""What Slack and webhooks call. Each module has `register(bolt_app, runtime)` for its Slack
listeners and may have `routes(runtime) -> list[aiohttp.web.RouteDef]` for its webhooks."""
from __future__ import annotations

from handlers import actions, alerts, command

MODULES = (command, actions, alerts)


def register_all(app, runtime) -> None:
    for module in MODULES:
        module.register(app, runtime)


def register_routes(web_app, runtime) -> None:
    for module in MODULES:
        if hasattr(module, "routes"):
            web_app.add_routes(module.routes(runtime))
