"""Guide: "500 Internal Server Errors" step 4 and "Monitoring & Alerting" M1 — the error rate as a percentage
of requests, from the API's `/metrics`: `http_requests_total` by status, read twice a few seconds apart, so
the rate is of the requests answered in between (not since the process started). The real ERPGo exports
only Go runtime and process metrics: that is said, with where else to look."""

from __future__ import annotations

from bot.context import CheckContext
from bot.core.findings import Finding, Status
from bot.core.registry import Runbook
from bot.core.units import plural
from bot.targets.go_metrics import GoMetrics
from runbooks.resources.common import METRICS_INTERVAL, metrics_pair, not_exposed

runbook = Runbook("errorrate")

SECTION = "Application Issues › 500 Internal Server Errors"
COMPONENT = "Error rate"
WARN_PCT = 1.0
CRIT_PCT = 5.0  # the guide's alert rule: error rate > 5 %


def answered_between(first: GoMetrics, second: GoMetrics) -> dict[str, float]:
    """Requests answered between the two reads, by status (a counter that went down was reset: its new value)."""
    return {
        status: after - first.requests.get(status, 0.0) if after >= first.requests.get(status, 0.0) else after
        for status, after in second.requests.items()
    }


def not_exported(second: GoMetrics) -> Finding:
    return Finding.skipped(
        COMPONENT,
        "/metrics exports no http_requests_total: the error rate cannot be measured there",
        details=[
            f"it exports {plural(len(second.families), 'metric family', 'metric families')} "
            "(ERPGo: Go runtime and process metrics only)",
            "count the 5xx instead: `/erpgo logs` (the API's own lines), or the reverse proxy's access log",
        ],
        section=SECTION,
        data={"exported": False},
    )


def rate_finding(answered: dict[str, float], seconds: float) -> Finding:
    total = sum(answered.values())
    errors = sum(n for status, n in answered.items() if status.startswith("5"))
    by_status = ", ".join(f"{status} ×{n:.0f}" for status, n in sorted(answered.items()) if n)
    data = {"exported": True, "requests": total, "errors": errors, "by_status": answered, "seconds": seconds}
    if not total:
        return Finding.ok(COMPONENT, f"no requests answered in {seconds:.1f} s", section=SECTION, data=data)
    percent = errors * 100 / total
    status = Status.CRIT if percent > CRIT_PCT else Status.WARN if percent > WARN_PCT else Status.OK
    title = f"{percent:.1f} % of requests answered 5xx ({errors:.0f} of {total:.0f} in {seconds:.1f} s)"
    details = [f"by status: {by_status}", f"the guide alerts above {CRIT_PCT:g} % (HighErrorRate)"]
    if errors:
        details.append("`/erpgo logs` shows the 5xx lines, panics and stack traces")
    return Finding(status, COMPONENT, title, details=details, section=SECTION, data=data | {"percent": percent})


@runbook.check("perf", component=COMPONENT, section=SECTION, timeout=METRICS_INTERVAL + 10)
async def error_rate(ctx: CheckContext) -> Finding:
    """`rate(http_requests_total{status=~"5.."}[…]) / rate(http_requests_total[…])` over two reads of /metrics."""
    pair = await metrics_pair(ctx)
    if pair is None:
        return not_exposed(COMPONENT)
    first, second = pair
    if not second.requests:
        return not_exported(second)
    return rate_finding(answered_between(first, second), second.read_at - first.read_at)
