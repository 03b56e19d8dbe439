"""Guide: "Monitoring & Alerting" — which checks an alert gets when it arrives.

The guide's own alert rules come first (HighErrorRate, DatabaseConnectionPool), then the other
conditions it says to monitor (response time, memory, CPU, disk, container restarts, failed
logins, service availability, slow queries, lock waits), matched by alert name or, for rules
named otherwise, by a label predicate. The first mapping that matches wins. An alert nobody mapped
gets the `health` verb's checks (bot/alerts.py: triage_checks), never nothing.

Checks are referenced by name, never copied; the composition root resolves the names once every
runbook is installed, and a name no runbook registered stops the bot at start.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.core.registry import Runbook

runbook = Runbook("triage")
LabelMatch = Callable[[dict[str, str]], bool]


def checks(*names: str) -> tuple[str, ...]:
    """The checks `names`, in that order (resolved when the registry is built)."""
    return names


def name_matches(pattern: str) -> LabelMatch:
    compiled = re.compile(pattern, re.IGNORECASE)
    return lambda labels: bool(compiled.search(labels.get("alertname", "")))


def label_in(label: str, *values: str) -> LabelMatch:
    wanted = {v.lower() for v in values}
    return lambda labels: labels.get(label, "").lower() in wanted


# -- the guide's alert rules (Monitoring & Alerting › Alert Configuration Example) ---------------

# error rate > 5 %: is the API healthy, what do its logs say (5xx, panics, stack traces), can it
# reach its database and how full is the pool, which statements are slow.
runbook.triage_for(
    "HighErrorRate",
    checks=checks("api_health", "api_error_logs", "postgres_health", "connections_by_state", "slow_statements"),
)

# pool > 90 %: connections by state and by application, sessions idle in transaction, long
# queries, and the blocking tree (whose proposals — cancel / terminate — go through approval).
runbook.triage_for(
    "DatabaseConnectionPool",
    checks=checks(
        "connections_by_state", "connections_by_client", "idle_in_transaction", "long_queries", "blocking_sessions"
    ),
)

# -- the other conditions the guide monitors ---------------------------------------------------

RESPONSE_TIME = checks("api_health", "slow_statements", "long_queries", "redis_health", "postgres_health")
MEMORY = checks("docker_containers", "redis_health", "api_health")
CPU = checks("docker_containers", "long_queries", "slow_statements", "api_health")
DISK = checks("docker_containers", "postgres_health", "api_error_logs")
RESTARTS = checks("docker_containers", "api_error_logs", "api_health")
FAILED_LOGINS = checks("api_error_logs", "login_path", "api_health")
SERVICE_DOWN = checks("api_health", "docker_containers", "postgres_health", "redis_health")
SLOW_QUERIES = checks("slow_statements", "long_queries", "connections_by_state", "table_statistics")
LOCK_WAITS = checks("blocking_sessions", "long_queries", "idle_in_transaction")
DATABASE = checks("postgres_health", "connections_by_state", "slow_statements", "blocking_sessions")
CACHE = checks("redis_health", "api_health")

runbook.triage_for(
    "HighResponseTime",
    "HighLatency",
    "SlowResponses",
    "ApiLatencyHigh",
    checks=RESPONSE_TIME,
    match=name_matches(r"latency|response.?time|slow.?resp"),
)
runbook.triage_for("SlowQueries", "PostgresSlowQueries", checks=SLOW_QUERIES, match=name_matches(r"slow.?quer"))
runbook.triage_for(
    "DatabaseLockWait",
    "LockWaitTime",
    "PostgresLocks",
    "Deadlocks",
    checks=LOCK_WAITS,
    match=name_matches(r"lock|deadlock"),
)
runbook.triage_for(
    "HighMemoryUsage", "ContainerMemoryHigh", "OOMKilled", checks=MEMORY, match=name_matches(r"memory|oom")
)
runbook.triage_for("HighCPUUsage", "ContainerCPUHigh", "CPUThrottling", checks=CPU, match=name_matches(r"cpu"))
runbook.triage_for(
    "DiskSpaceLow",
    "HighDiskUsage",
    "DiskUsageHigh",
    "DatabaseDiskUsage",
    checks=DISK,
    match=name_matches(r"disk|filesystem|volume.?(full|usage)"),
)
runbook.triage_for(
    "ContainerRestarting",
    "ContainerRestarts",
    "CrashLooping",
    checks=RESTARTS,
    match=name_matches(r"restart|crash.?loop"),
)
runbook.triage_for(
    "FailedLogins",
    "HighFailedLoginRate",
    "BruteForceAttempt",
    checks=FAILED_LOGINS,
    match=name_matches(r"login|brute|auth.?fail"),
)
runbook.triage_for(
    "ServiceDown",
    "InstanceDown",
    "TargetDown",
    "ErpgoApiDown",
    checks=SERVICE_DOWN,
    match=name_matches(r"down$|unavailable|unreachable|^up$"),
)

# rules named after the component rather than the symptom: by their component/service label
runbook.triage_for(
    checks=DATABASE,
    match=lambda labels: (
        label_in("component", "postgres", "postgresql", "database", "db")(labels)
        or label_in("service", "postgres", "postgresql", "database", "db")(labels)
    ),
)
runbook.triage_for(
    checks=CACHE,
    match=lambda labels: (
        label_in("component", "redis", "cache")(labels) or label_in("service", "redis", "cache")(labels)
    ),
)
runbook.triage_for(
    checks=SERVICE_DOWN + checks("api_error_logs"),
    match=lambda labels: (
        label_in("component", "api", "erpgo-api")(labels) or label_in("service", "api", "erpgo-api")(labels)
    ),
)
