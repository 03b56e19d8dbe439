"""What Slack and webhooks call, by domain: the /erpgo router (command), approval buttons and their
verbs (approvals), Alertmanager intake and its verb (alerts). Each module has `register(bolt_app,
runtime)` for its Slack listeners and may have `routes(runtime)` for its HTTP routes; the
composition root (bot/app.py) wires them. No handler module imports another."""
