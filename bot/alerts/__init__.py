"""Alertmanager intake: the webhook schema, the group state machine, recording notifications,
the messages of an alert thread, and triage."""
