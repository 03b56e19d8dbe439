"""Prometheus metrics served on GET /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()

COMMANDS = Counter(
    "erpgo_commands_total", "Slash commands handled, by verb and outcome", ["verb", "outcome"], registry=REGISTRY
)
CHECK_SECONDS = Histogram(
    "erpgo_check_duration_seconds",
    "Duration of one diagnostic check",
    ["check", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
SLACK_API_ERRORS = Counter(
    "erpgo_slack_api_errors_total", "Slack Web API calls that failed", ["method", "error"], registry=REGISTRY
)
SLACK_BACKLOG = Gauge("erpgo_slack_backlog", "Slack messages waiting to be delivered", registry=REGISTRY)
SLACK_OUTBOX_SENT = Counter(
    "erpgo_slack_outbox_sent_total", "Queued Slack messages delivered, by operation", ["op"], registry=REGISTRY
)
SLACK_OUTBOX_RETRIES = Counter(
    "erpgo_slack_outbox_retries_total",
    "Queued Slack messages not delivered on an attempt, by reason",
    ["reason"],
    registry=REGISTRY,
)
ALERT_WEBHOOKS = Counter(
    "erpgo_alert_webhooks_total", "Alertmanager notifications received, by outcome", ["outcome"], registry=REGISTRY
)
ALERTS_RECEIVED = Counter(
    "erpgo_alerts_received_total",
    "Alerts recorded from Alertmanager notifications, by status",
    ["status"],
    registry=REGISTRY,
)
ALERT_ACCEPT_SECONDS = Histogram(
    "erpgo_alert_accept_seconds",
    "Time to validate and durably record one Alertmanager notification",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)


def render() -> bytes:
    return generate_latest(REGISTRY)
