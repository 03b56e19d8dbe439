"""Time series a report shows: what a chart draws (bot/slack/charts.py), and the text sparkline a
message carries so the shape is visible without opening the chart."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24  # characters of a sparkline
MAX_SERIES = 8  # lines one chart draws: the highest ones
MAX_LEGEND = 60  # characters of a series' name in a legend


@dataclass
class Series:
    """One line: its name and its (epoch seconds, value) points, oldest first."""

    name: str
    points: list[tuple[float, float]]

    @property
    def values(self) -> list[float]:
        return [value for _at, value in self.points]


@dataclass
class Chart:
    """What a chart shows: the highest MAX_SERIES series, the threshold a rule compares them with, the
    period an alert fired (`firing`: start, end or None while it fires) and how many series were left out."""

    title: str
    series: list[Series]
    threshold: float | None = None
    firing: tuple[float, float | None] | None = None
    more: int = 0
    subtitle: str = ""  # a second title line: the expression drawn

    @property
    def has_data(self) -> bool:
        return any(s.points for s in self.series)


def series_name(metric: dict) -> str:
    """A Prometheus series' labels as PromQL writes them: name{label="value", …}."""
    labels = {k: v for k, v in metric.items() if k != "__name__"}
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    name = str(metric.get("__name__") or "")
    text = f"{name}{{{inner}}}" if inner else name or "{}"
    return text if len(text) <= MAX_LEGEND else text[: MAX_LEGEND - 1] + "…"


def highest(found: list[Series], keep: int = MAX_SERIES) -> list[Series]:
    """The `keep` series with the highest peak (those with no point are never kept), in name order."""
    with_points = [s for s in found if s.points]
    top = sorted(with_points, key=lambda s: max(s.values), reverse=True)[:keep]
    return sorted(top, key=lambda s: s.name)


def decimate(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most about `limit` points with the same shape: each bucket keeps its lowest and highest point,
    so a spike is never smoothed away."""
    if len(points) <= limit or limit < 4:
        return list(points)
    size = math.ceil(len(points) / (limit // 2))
    kept: list[tuple[float, float]] = []
    for start in range(0, len(points), size):
        bucket = points[start : start + size]
        low = min(bucket, key=lambda p: p[1])
        high = max(bucket, key=lambda p: p[1])
        kept.extend(sorted({low, high}))
    return kept


def sparkline(values: list[float], width: int = SPARK_WIDTH) -> str:
    """The values as block characters (▁ lowest … █ highest), resampled to at most `width`."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return ""
    if len(values) > width:
        size = len(values) / width
        values = [max(values[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)]) for i in range(width)]
    low, high = min(values), max(values)
    if high == low:
        return SPARK[0] * len(values)
    scale = (len(SPARK) - 1) / (high - low)
    return "".join(SPARK[round((v - low) * scale)] for v in values)


def summary(values: list[float]) -> tuple[float, float, float] | None:
    """(min, max, last) of the values; None when there is none."""
    if not values:
        return None
    return min(values), max(values), values[-1]


def figure(value: float) -> str:
    """A value as a chart's text shows it: 4 significant digits, thousands and millionths alike."""
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.4g}"
    return f"{value:.3e}"


def describe(series: Series, show: Callable[[float], str] = figure) -> str:
    """One line for a message: the series' sparkline, its name, then min / max / last (as `show` writes them)."""
    stats = summary(series.values)
    if stats is None:
        return f"{series.name}: no data"
    low, high, last = stats
    return f"{sparkline(series.values)} {series.name} — min {show(low)} · max {show(high)} · last {show(last)}"
