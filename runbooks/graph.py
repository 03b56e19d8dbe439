"""`/erpgo graph <promql> [range]`: a PromQL expression over the last range (30m, 6h, 2d; default 1 h, at
most 7 d) as a chart in the report's thread, with each series' sparkline and min / max / last in the text.
A query Prometheus refuses is answered with Prometheus's own (redacted) message and the usage."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from bot.context import CheckContext
from bot.core.findings import Finding
from bot.core.redact import redact
from bot.core.registry import Args, Runbook, UsageError
from bot.core.series import Chart, describe
from bot.core.units import parse_duration, short_duration
from bot.targets.prometheus import PrometheusError

runbook = Runbook("graph")

SECTION = "Monitoring & Alerting"
USAGE = "<promql> [range]"
DEFAULT_RANGE = 3600
MAX_RANGE = 7 * 86400
MAX_EXPRESSION = 2000
_RANGE_WORD = re.compile(r"\d+[smhdw](\d+[smhdw])*", re.IGNORECASE)
# A label matcher whose value lost its quotes to the command line's word splitting: {job=api}.
_BARE_MATCHER = re.compile(r"([{,]\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*)([^\"'`\s,{}][^,{}]*?)(\s*[,}])")
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


def requote(expr: str) -> str:
    """The expression with Slack's curly quotes made straight and label values that lost their quotes
    quoted again (an unquoted value is never valid PromQL, so this changes no valid expression)."""
    expr = expr.translate(_SMART_QUOTES)
    previous = None
    while previous != expr:  # a matcher's closing character may open the next one's match
        previous = expr
        expr = _BARE_MATCHER.sub(lambda m: f'{m.group(1)}"{m.group(2)}"{m.group(3)}', expr)
    return expr


@dataclass(frozen=True)
class GraphArgs(Args):
    expr: str = ""
    range: int = DEFAULT_RANGE  # seconds


def parse_graph(words: list[str]) -> GraphArgs:
    """The expression, and the range when the last word is a duration."""
    if not words:
        raise UsageError("give a PromQL expression, e.g. `/erpgo graph 'rate(process_cpu_seconds_total[5m])' 6h`")
    seconds = DEFAULT_RANGE
    if len(words) > 1 and _RANGE_WORD.fullmatch(words[-1]):
        try:
            seconds = parse_duration(words[-1], maximum=MAX_RANGE, what="range")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        words = words[:-1]
    expr = requote(" ".join(words).strip())
    if len(expr) > MAX_EXPRESSION:
        raise UsageError(f"the expression is {len(expr):,} characters long; at most {MAX_EXPRESSION:,}")
    return GraphArgs(expr, seconds)


runbook.verb(
    "graph",
    "a PromQL expression as a chart over the last range (30m, 6h, 2d; default 1h, at most 7d), "
    "min / max / last of each series (PROMETHEUS_URL)",
    usage=USAGE,
    parse=parse_graph,
    ack="Asking Prometheus…",
)


@runbook.check("graph", component="Prometheus", section=SECTION, timeout=20)
async def graph(ctx: CheckContext) -> Finding:
    asked = ctx.arg(GraphArgs)
    expr, seconds = asked.expr, asked.range
    shown, span = redact(expr), short_duration(seconds)
    end = time.time()
    try:
        answer = await ctx.targets.prometheus.query_range(expr, end - seconds, end)
    except PrometheusError as exc:
        return Finding.error(
            "Prometheus",
            f"Prometheus refused the query: {exc.text}",
            details=[f"Usage: /erpgo graph {USAGE} — e.g. /erpgo graph 'rate(process_cpu_seconds_total[5m])' 6h"],
        )
    if not answer.series:
        return Finding.warn("Prometheus", f"no data: {shown} has no series over the last {span}")
    lines = [describe(series) for series in answer.series]
    if answer.more:
        lines.append(f"… and {answer.more} more series (the {len(answer.series)} highest are shown)")
    return Finding.ok(
        "Prometheus",
        f"{shown} over the last {span}: {len(answer.series) + answer.more} series",
        details=lines,
        chart=Chart(title=f"{shown} — last {span}", series=answer.series, more=answer.more),
        data={"series": len(answer.series), "more": answer.more, "step_s": answer.step},
    )
