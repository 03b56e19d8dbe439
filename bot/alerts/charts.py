"""The alert's graph in its thread: the value its rule compares (the left side of the expression's
top-level comparison, read from the alerts' `generatorURL`), from ERPGO_CHART_LOOKBACK before the group
fired until now, asked of PROMETHEUS_URL (the host in `generatorURL` is usually internal), with the
threshold drawn and the firing period shaded. Queued after the triage text, never before nor instead:
a chart that cannot be drawn is a line in the thread, never a missing report."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from bot.core.errors import describe_error
from bot.core.logs import log
from bot.core.series import Chart
from bot.runtime import Runtime
from bot.settings import Settings
from bot.slack import render
from bot.slack.charts import chart_file
from bot.slack.outbox import BACKGROUND
from bot.targets import NotConfigured, Targets
from bot.targets.prometheus import PrometheusError

COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
SET_OPERATORS = ("and", "or", "unless")
CHART_TIMEOUT_S = 20.0  # the query and the drawing, together

GROUP = """
SELECT g.thread_key, g.channel, g.status, g.fired_at, g.resolved_at,
       (SELECT array_agg(DISTINCT a.labels->>'alertname' || chr(31) || a.generator_url)
        FROM alerts a WHERE a.group_id = g.id AND a.generator_url <> '' AND a.labels ? 'alertname') AS rules
FROM alert_groups g WHERE g.id = $1
"""


@dataclass
class Rule:
    alertname: str
    expression: str  # the rule's whole expression
    value: str  # what it compares: the left side of its top-level comparison
    threshold: float | None


def rule_expression(generator_url: str) -> str | None:
    """The rule's expression in a Prometheus `generatorURL` (…/graph?g0.expr=…); None for any other URL."""
    try:
        query = parse_qs(urlsplit(generator_url).query)
    except ValueError:
        return None
    found = query.get("g0.expr") or []
    return found[0].strip() if found and found[0].strip() else None


def split_comparison(expr: str) -> tuple[str, float | None]:
    """(left side, threshold) of the expression's first top-level comparison, e.g.
    `rate(a[5m]) / rate(b[5m]) > 0.05` → ("rate(a[5m]) / rate(b[5m])", 0.05). No comparison: (expr, None);
    a right side that is not a number: (left side, None)."""
    at = _top_level_comparison(expr)
    if at is None:
        return expr, None
    position, operator = at
    right = expr[position + len(operator) :].strip().removeprefix("bool").strip()
    for word in SET_OPERATORS:  # `x > 5 and y`: the threshold is what comes before the set operator
        right = right.split(f" {word} ")[0]
    try:
        threshold: float | None = float(right.strip().strip("()"))
    except ValueError:
        threshold = None
    return expr[:position].strip(), threshold


def _top_level_comparison(expr: str) -> tuple[int, str] | None:
    """Where the first comparison outside parentheses, brackets, braces and strings is."""
    depth, quote, index = 0, "", 0
    while index < len(expr):
        char = expr[index]
        if quote:
            quote = "" if char == quote and expr[index - 1] != "\\" else quote
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            operator = next((op for op in COMPARISONS if expr.startswith(op, index)), None)
            if operator is not None and not expr.startswith("=~", index) and not expr.startswith("!~", index):
                return index, operator
        index += 1
    return None


def group_rule(rules: list[str] | None) -> Rule | None:
    """The first rule (by alert name) among the group's alerts that says what it graphs."""
    for item in sorted(rules or []):
        alertname, _sep, url = item.partition(chr(31))
        expression = rule_expression(url)
        if expression:
            value, threshold = split_comparison(expression)
            return Rule(alertname or "alert", expression, value, threshold)
    return None


async def alert_chart(
    targets: Targets, settings: Settings, rule: Rule, fired_at: float, resolved_at: float | None
) -> Chart:
    """The rule's value around the alert: ERPGO_CHART_LOOKBACK before it fired until now."""
    end = time.time()
    start = min(fired_at, end) - settings.erpgo_chart_lookback
    answer = await targets.prometheus.query_range(rule.value, start, end)
    return Chart(
        title=rule.alertname,
        subtitle=rule.expression,
        series=answer.series,
        threshold=rule.threshold,
        firing=(fired_at, resolved_at),
        more=answer.more,
    )


async def queue_alert_chart(runtime: Runtime, group_id: int) -> bool:
    """Draw the group's chart and queue it in its thread (after whatever is queued there already).
    False when there is nothing to draw: no rule expression, or no PROMETHEUS_URL. Never raises."""
    try:
        return await asyncio.wait_for(_queue_alert_chart(runtime, group_id), CHART_TIMEOUT_S)
    except Exception as exc:
        log.warning("alert_chart_failed", group_id=group_id, error=describe_error(exc))
        return False


async def _queue_alert_chart(runtime: Runtime, group_id: int) -> bool:
    async with runtime.store.acquire() as conn:
        group = await conn.fetchrow(GROUP, group_id)
    rule = group_rule(group["rules"]) if group is not None else None
    if rule is None or runtime.outbox is None:
        return False
    resolved = group["resolved_at"].timestamp() if group["status"] == "resolved" and group["resolved_at"] else None
    try:
        chart = await alert_chart(runtime.targets, runtime.settings, rule, group["fired_at"].timestamp(), resolved)
        upload = await asyncio.to_thread(chart_file, chart, f"{rule.alertname}-{group_id}", True)
        note = None if upload else f":chart_with_upwards_trend: No data in Prometheus for `{rule.value}`."
    except NotConfigured:
        return False
    except PrometheusError as exc:
        upload, note = None, f":warning: No chart: Prometheus refused `{rule.value}`: {exc.text}"
    except (OSError, TimeoutError) as exc:
        upload, note = None, f":warning: No chart: Prometheus is unreachable ({describe_error(exc)})."
    async with runtime.outbox.thread(group["thread_key"], group["channel"], priority=BACKGROUND) as rows:
        if upload is not None:
            rows.upload_bytes(upload[0], upload[1], kind="alert.chart")
        else:
            rows.reply(render.text_message(render.escape(note or "")), kind="alert.chart")
    return upload is not None
