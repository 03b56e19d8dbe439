"""Every alert name the real ERPGo's Prometheus rule files send, and the checks its triage runs."""

from __future__ import annotations

import pytest

from bot.alerts.triage import triage_checks
from bot.app import build_registry
from bot.context import Actor, AlertScope
from bot.core.engine import run_checks
from bot.core.findings import Status
from bot.settings import load_settings
from bot.targets import Targets
from tests import harness

ERROR_RATE = [
    "api_health",
    "error_rate",
    "api_error_logs",
    "postgres_health",
    "connections_by_state",
    "slow_statements",
]
POOL = ["connections_by_state", "connections_by_client", "idle_in_transaction", "long_queries", "blocking_sessions"]
PERF = ["api_latency", "slowest_statements", "cache_performance"]  # runbooks/performance.py
AVAILABILITY = ["api_health", "docker_containers", "api_error_logs", "postgres_health", "redis_health"]
SLOW_QUERIES = ["slow_statements", "long_queries", "blocking_sessions", "connections_by_state", "table_statistics"]
MEMORY = ["memory_usage", "goroutines", "pprof_profiles", "host_memory", "memory_processes"]  # runbooks/resources
GOROUTINES = ["goroutines", "pprof_profiles"]
CPU = ["cpu_usage", "container_processes", "cpu_rate"]
APP = ["container_start", "container_environment", "container_ports", "container_dependencies"]  # runbooks/containers
CACHE = ["redis_health", "api_health"]
SECURITY = ["attack_evidence", "security_settings"]  # runbooks/security/attacks.py
BACKUPS = ["backup_freshness", "backup_verification", "backup_sizes", "backup_retention"]  # runbooks/emergency
OUTAGE_OR_APP = ["outage_or_service_down"]  # the app checks for one container down, the outage view for several
STOCK = ["stock_levels", "postgres_health"]
BUSINESS = ["api_health", "api_error_logs", "postgres_health"]
DISK = ["filesystem_usage", "docker_disk_usage", "container_logs", "database_disk"]  # runbooks/disk.py

# the 51 names of the real rule files, in their order, with the checks each one's triage runs
REAL_ALERTS: dict[str, list[str]] = {
    "HighErrorRate": ERROR_RATE,
    "HighResponseTime": PERF,
    "ServiceDown": OUTAGE_OR_APP,
    "HighMemoryUsage": MEMORY,
    "HighGoroutineCount": GOROUTINES,
    "DatabaseConnectionPoolExhausted": POOL,
    "PostgreSQLDown": [
        "postgres_health",
        "connection_diagnosis",
        "database_container",
        "docker_containers",
        "api_health",
    ],
    "PostgreSQLHighConnections": [
        "postgres_health",
        "connections_by_state",
        "connections_by_client",
        "idle_in_transaction",
        "long_queries",
    ],
    "PostgreSQLSlowQueries": SLOW_QUERIES,
    "PostgreSQLReplicationLag": ["replication_status", "long_queries", "postgres_health"],
    "PostgreSQLDiskSpace": DISK,
    "RedisDown": ["redis_health", "docker_containers", "api_health"],
    "RedisHighMemoryUsage": ["redis_health", "docker_containers"],
    "RedisHighConnectionCount": CACHE,
    "RedisExpiredKeys": CACHE,
    "HighCPUUsage": CPU,
    "HighDiskUsage": DISK,
    "HighMemoryUsageSystem": MEMORY,
    "NetworkErrors": ["service_discovery", "compose_networks", "published_ports"],
    "DockerContainerDown": APP,
    "LowOrderRate": BUSINESS,
    "HighFailedOrderRate": BUSINESS,
    "LowUserActivity": ["api_health", "login_path", "api_error_logs", "postgres_health"],
    "HighInventoryAlerts": STOCK,
    "PaymentProcessingDelays": BUSINESS,
    "HighFailedLoginRate": SECURITY,
    "SuspiciousAPIUsage": SECURITY,
    "UnauthorizedAccessAttempts": SECURITY,
    "DataExfiltrationDetection": SECURITY,
    "BackupFailed": BACKUPS,
    "BackupOverdue": BACKUPS,
    "LowBackupRetention": BACKUPS,
    "SLAViolationResponseTime": PERF,
    "SLAViolationAvailability": AVAILABILITY,
    "SLAViolationErrorRate": ERROR_RATE,
    "CriticalErrorRate": ERROR_RATE,
    "CriticalResponseTime": PERF,
    "CriticalMemoryUsage": MEMORY,
    "CriticalGoroutineCount": GOROUTINES,
    "DatabaseConnectionHigh": POOL,
    "DatabaseConnectionCritical": POOL,
    "DatabaseSlowQueries": SLOW_QUERIES,
    "LowCacheHitRate": CACHE,
    "CriticalCacheHitRate": CACHE,
    "HighOrderCancellationRate": BUSINESS,
    "HighAuthFailureRate": SECURITY,
    "CriticalAuthFailureRate": SECURITY,
    "LowStockAlerts": STOCK,
    "HighInventoryUpdates": ["stock_levels", "blocking_sessions", "long_queries"],
    "ApplicationDown": OUTAGE_OR_APP,
    "PanicDetected": ["api_error_logs", "docker_containers", "api_health"],
}


@pytest.fixture(scope="module")
def registry():
    return build_registry()


def test_the_list_is_the_51_names_of_the_real_rule_files():
    assert len(REAL_ALERTS) == 51


@pytest.mark.parametrize("alertname", list(REAL_ALERTS))
def test_each_real_alert_gets_the_checks_that_answer_it(registry, alertname):
    assert [c.name for c in triage_checks(registry, [alertname], {})] == REAL_ALERTS[alertname]


@pytest.mark.parametrize("alertname", list(REAL_ALERTS))
def test_the_rules_labels_do_not_change_a_named_alerts_checks(registry, alertname):
    """The real rules carry `service`/`component` labels; the name decides, as it is more precise."""
    labels = {"severity": "critical", "service": "erpgo-api", "component": "database"}
    assert [c.name for c in triage_checks(registry, [alertname], labels)] == REAL_ALERTS[alertname]


def test_no_real_alert_falls_back_to_the_health_checks(registry):
    for alertname in REAL_ALERTS:
        assert registry.checks_for_alert(alertname, {"alertname": alertname}), alertname


def test_a_group_of_several_real_alerts_runs_each_check_once(registry):
    names = [c.name for c in triage_checks(registry, ["PostgreSQLDown", "ServiceDown", "RedisDown"], {})]
    assert len(names) == len(set(names))
    assert names[:5] == [
        "postgres_health",
        "connection_diagnosis",
        "database_container",
        "docker_containers",
        "api_health",
    ]
    assert {"redis_health", "outage_or_service_down"} <= set(names)


async def test_replication_lag_on_a_primary_without_replicas_says_nothing_streams(registry, erp_dsn):
    settings = load_settings(erpgo_database_url=erp_dsn)
    ctx = harness.context(
        settings, Targets(settings), actor=Actor("alertmanager"), alert=AlertScope(("PostgreSQLReplicationLag",))
    )
    try:
        findings = await run_checks(triage_checks(registry, ["PostgreSQLReplicationLag"], {}), ctx)
    finally:
        await ctx.targets.close()
    [replication] = [f for f in findings if f.component == "PostgreSQL replication"]
    assert replication.status is Status.WARN and replication.title.startswith("a primary with no replica attached")
    assert replication.section == "Database Issues › Database Connection Issues"
