"""Guide: "Monitoring & Alerting" — which checks an alert gets when it arrives.

The guide's own alert rules come first (HighErrorRate, DatabaseConnectionPool), then the 51 names
the real ERPGo's rule files send, each by its exact name, then the other conditions the guide says
to monitor (response time, memory, CPU, disk, container restarts, failed logins, service
availability, slow queries, lock waits), matched by alert name or, for rules named otherwise, by a
label predicate. The first mapping that matches wins. An alert nobody mapped
gets the `health` verb's checks (bot/alerts.py: triage_checks), never nothing.

Checks are referenced by name, never copied; the composition root resolves the names once every
runbook is installed, and a name no runbook registered stops the bot at start.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.core.registry import FALLBACK, Runbook

runbook = Runbook("triage", precedence=FALLBACK)  # the generic rules: any section runbook comes first
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

# error rate > 5 %: is the API healthy, the rate itself (when /metrics has it), what do its logs say (5xx, panics, stack traces), can it
# reach its database and how full is the pool, which statements are slow.
ERROR_RATE = checks(
    "api_health", "error_rate", "api_error_logs", "postgres_health", "connections_by_state", "slow_statements"
)
runbook.triage_for("HighErrorRate", checks=ERROR_RATE)

# pool > 90 %: connections by state and by application, sessions idle in transaction, long
# queries, and the blocking tree (whose proposals — cancel / terminate — go through approval).
POOL = checks(
    "connections_by_state", "connections_by_client", "idle_in_transaction", "long_queries", "blocking_sessions"
)
runbook.triage_for("DatabaseConnectionPool", checks=POOL)

# -- the real ERPGo's rule files (51 names; tests/test_triage_real_alerts.py lists them all) -------
#
# Named exactly, before the guide's patterns below, so that "RedisHighMemoryUsage" gets the Redis checks
# rather than the memory ones, "PostgreSQLDown" the database's rather than the API's. Where a runbook of
# its own is still to come (memory and CPU, backups), the nearest checks that exist stand in;
# a runbook that declares `triage_for` with these names is installed earlier and wins (disk.py:
# HighDiskUsage, PostgreSQLDiskSpace; network.py: NetworkErrors; security/attacks.py: the failed login,
# auth failure, unauthorized access, suspicious usage and exfiltration alerts).

RESPONSE_TIME = checks("api_health", "slow_statements", "long_queries", "redis_health", "postgres_health")
CACHE = checks("redis_health", "api_health")
FAILED_LOGINS = checks("api_error_logs", "login_path", "api_health")
# the business rules measure orders, users and payments through the API: is it up, what does it log,
# can it reach its database
BUSINESS = checks("api_health", "api_error_logs", "postgres_health")

runbook.triage_for("CriticalErrorRate", "SLAViolationErrorRate", checks=ERROR_RATE)
# the panic's lines and stack, and whether the container restarted after it
runbook.triage_for("PanicDetected", checks=checks("api_error_logs", "docker_containers", "api_health"))
runbook.triage_for(
    "DatabaseConnectionPoolExhausted", "DatabaseConnectionHigh", "DatabaseConnectionCritical", checks=POOL
)
runbook.triage_for(
    "PostgreSQLHighConnections",
    checks=checks(
        "postgres_health", "connections_by_state", "connections_by_client", "idle_in_transaction", "long_queries"
    ),
)
# PostgreSQLDown: runbooks/containers/ondemand.py, first, with the database container's restart
runbook.triage_for(
    "PostgreSQLSlowQueries",
    "DatabaseSlowQueries",
    checks=checks("slow_statements", "long_queries", "blocking_sessions", "connections_by_state", "table_statistics"),
)
runbook.triage_for("PostgreSQLReplicationLag", checks=checks("replication_status", "long_queries", "postgres_health"))
runbook.triage_for("RedisDown", checks=checks("redis_health", "docker_containers", "api_health"))
runbook.triage_for("RedisHighMemoryUsage", checks=checks("redis_health", "docker_containers"))
runbook.triage_for(
    "RedisHighConnectionCount", "RedisExpiredKeys", "LowCacheHitRate", "CriticalCacheHitRate", checks=CACHE
)
runbook.triage_for("HighResponseTime", "CriticalResponseTime", "SLAViolationResponseTime", checks=RESPONSE_TIME)
runbook.triage_for(
    "ServiceDown",
    "ApplicationDown",
    "SLAViolationAvailability",
    checks=checks("api_health", "docker_containers", "api_error_logs", "postgres_health", "redis_health"),
)
runbook.triage_for("DockerContainerDown", checks=checks("docker_containers", "api_error_logs", "api_health"))
runbook.triage_for(
    "HighMemoryUsage", "CriticalMemoryUsage", checks=checks("docker_containers", "api_health", "redis_health")
)
runbook.triage_for("HighMemoryUsageSystem", checks=checks("docker_containers", "redis_health", "postgres_health"))
# goroutines pile up waiting: on the database pool, on slow statements, on a lock
runbook.triage_for(
    "HighGoroutineCount",
    "CriticalGoroutineCount",
    checks=checks("api_health", "api_error_logs", "connections_by_client", "long_queries", "blocking_sessions"),
)
runbook.triage_for("HighCPUUsage", checks=checks("docker_containers", "long_queries", "slow_statements", "api_health"))
runbook.triage_for(
    "BackupFailed", "BackupOverdue", "LowBackupRetention", checks=checks("postgres_health", "docker_containers")
)
runbook.triage_for("LowStockAlerts", "HighInventoryAlerts", checks=checks("stock_levels", "postgres_health"))
runbook.triage_for("HighInventoryUpdates", checks=checks("stock_levels", "blocking_sessions", "long_queries"))
runbook.triage_for(
    "LowOrderRate", "HighFailedOrderRate", "HighOrderCancellationRate", "PaymentProcessingDelays", checks=BUSINESS
)
runbook.triage_for("LowUserActivity", checks=checks("api_health", "login_path", "api_error_logs", "postgres_health"))

# -- the other conditions the guide monitors ---------------------------------------------------

MEMORY = checks("docker_containers", "redis_health", "api_health")
CPU = checks("docker_containers", "long_queries", "slow_statements", "api_health")
DISK = checks("docker_containers", "postgres_health", "api_error_logs")
RESTARTS = checks("docker_containers", "api_error_logs", "api_health")
SERVICE_DOWN = checks("api_health", "docker_containers", "postgres_health", "redis_health")
SLOW_QUERIES = checks("slow_statements", "long_queries", "connections_by_state", "table_statistics")
LOCK_WAITS = checks("blocking_sessions", "long_queries", "idle_in_transaction")
DATABASE = checks("postgres_health", "connections_by_state", "slow_statements", "blocking_sessions")

runbook.triage_for(
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
runbook.triage_for("ContainerMemoryHigh", "OOMKilled", checks=MEMORY, match=name_matches(r"memory|oom"))
runbook.triage_for("ContainerCPUHigh", "CPUThrottling", checks=CPU, match=name_matches(r"cpu"))
runbook.triage_for(
    "DiskSpaceLow",
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
    "BruteForceAttempt",
    checks=FAILED_LOGINS,
    match=name_matches(r"login|brute|auth.?fail"),
)
runbook.triage_for(
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
