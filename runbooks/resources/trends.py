"""Trends in the reports: a chart of Prometheus's series when PROMETHEUS_URL is set, else of what the bot
itself sampled (the background Docker stats, its own requests), and in the message a sparkline per series."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding
from bot.core.registry import ContainerArgs
from bot.core.series import Chart, Series, describe, figure, highest
from bot.targets.prometheus import PrometheusError

LOOKBACK = 3600  # s of Prometheus's series a report's trend shows


def sampled_series(ctx: CheckContext, history: Callable[..., tuple]) -> list[Series]:
    """One series per container the command names (else every watched one) from the background Docker
    stats: `history(sample)` gives its (unix seconds, value) points."""
    named = ctx.arg(ContainerArgs).container
    names = [named] if named else list(ctx.targets.stats.watched or ctx.targets.containers)
    found = []
    for name in names:
        sample = ctx.targets.stats.latest(name)
        if sample is not None:
            found.append(Series(name, [(at, float(value)) for at, value in history(sample)]))
    return highest(found)


async def prometheus_series(ctx: CheckContext, promql: str) -> tuple[list[Series], int, str]:
    """(series, how many more, a problem) of `promql` over the last LOOKBACK; ([], 0, "") without PROMETHEUS_URL."""
    if not ctx.settings.prometheus_url:
        return [], 0, ""
    end = time.time()
    try:
        answer = await ctx.targets.prometheus.query_range(promql, end - LOOKBACK, end)
    except (PrometheusError, OSError, TimeoutError) as exc:
        return [], 0, f"Prometheus: {describe_error(exc)}"
    return answer.series, answer.more, ""


async def trend(
    ctx: CheckContext,
    component: str,
    what: str,
    promql: str,
    sampled: list[Series],
    show: Callable[[float], str] = figure,
) -> Finding:
    """The trend of `what`: Prometheus's `promql` when it answers, else the `sampled` series."""
    series, more, problem = await prometheus_series(ctx, promql)
    source = f"Prometheus, {promql}, last {LOOKBACK // 60} min"
    if not series:
        series, more, source = sampled, 0, "sampled by the bot"
    if not any(s.points for s in series):
        why = [problem] if problem else []
        return Finding.skipped(component, f"no {what} series yet (nothing sampled, no Prometheus)", details=why)
    lines = [describe(s, show) for s in series] + ([f"… and {more} more series"] if more else [])
    return Finding.ok(
        component,
        f"{what} of {len(series) + more} series ({source})",
        details=lines + ([problem] if problem else []),
        chart=Chart(title=f"{what} ({source})", series=series, more=more),
        data={"series": len(series) + more, "source": "prometheus" if source != "sampled by the bot" else "bot"},
    )
