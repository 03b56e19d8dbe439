"""Charts as PNG files shared in a thread: pygal draws the SVG, resvg rasterises it (both small and fast:
see bench/chart_render). Everything a chart writes (title, legend, labels) is redacted before it is drawn,
since a PNG can no longer be redacted once made."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.findings import Finding
from bot.core.logs import log
from bot.core.redact import redact
from bot.core.series import Chart, decimate, describe, figure
from bot.slack.render import escape

if TYPE_CHECKING:
    import pygal
    from pygal.style import Style

WIDTH, HEIGHT = 900, 420
POINTS_DRAWN = 240  # per series: about two per pixel column of the plot
SERIES_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
THRESHOLD_COLOUR = "#d62728"  # the line a rule compares the series with
FIRING_COLOUR = "#ff7f0e"  # the period the alert fired, shaded
FONT_FAMILY = "DejaVu Sans"
# Where Debian (and the bot's image) put the DejaVu fonts: resvg draws no text without a font file,
# silently, so the font is looked for and its absence logged.
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts")


@functools.cache
def font_files() -> tuple[str, ...]:
    """The DejaVu Sans files the charts are drawn with (none found: logged once, text may be blank)."""
    for folder in FONT_DIRS:
        found = [str(p) for p in (Path(folder) / "DejaVuSans.ttf", Path(folder) / "DejaVuSans-Bold.ttf") if p.exists()]
        if found:
            return tuple(found)
    log.warning("chart_font_missing", looked_in=list(FONT_DIRS), hint="install fonts-dejavu-core")
    return ()


def _style(colours: tuple[str, ...]) -> Style:
    from pygal.style import Style

    return Style(
        font_family=FONT_FAMILY,
        background="#ffffff",
        plot_background="#ffffff",
        foreground="#333333",
        foreground_strong="#111111",
        foreground_subtle="#dddddd",
        colors=colours,
        opacity=".18",  # the filled firing period; lines are not filled
        opacity_hover=".18",
        stroke_width="2",
        stroke_opacity="1",
        stroke_width_hover="2",
        guide_stroke_color="#dddddd",
        major_guide_stroke_color="#bbbbbb",
        title_font_size=15,
        label_font_size=12,
        major_label_font_size=12,
        legend_font_size=12,
    )


def _utc_labels(span: float) -> Callable[[float], str]:
    """UTC times on the axis: hours and minutes, with the day once the chart spans more than one."""
    layout = "%m-%d %H:%M" if span > 86400 else "%H:%M"
    return lambda seconds: dt.datetime.fromtimestamp(seconds, dt.UTC).strftime(layout)


def _title(chart: Chart) -> str:
    more = f" (and {chart.more} more)" if chart.more else ""
    return chart.title + more + (f"\n{chart.subtitle}" if chart.subtitle else "")


def _span(chart: Chart) -> tuple[float, float]:
    times = [at for s in chart.series for at, _v in s.points]
    return min(times), max(times)


def _plot(chart: Chart) -> pygal.XY:
    """The pygal chart: the firing period (underneath), one line per series, then the threshold."""
    import pygal

    drawn = [s for s in chart.series if s.points]
    start, end = _span(chart)
    firing = _firing_band(chart, start, end)
    colours = ((FIRING_COLOUR,) if firing else ()) + SERIES_COLOURS[: len(drawn)]
    plot = pygal.XY(
        width=WIDTH,
        height=HEIGHT + 22 * -(-(len(drawn) + 2) // 3),  # room for the legend's rows
        style=_style(colours + (THRESHOLD_COLOUR,)),
        show_dots=False,
        js=[],
        disable_xml_declaration=True,
        legend_at_bottom=True,
        legend_at_bottom_columns=3,
        truncate_legend=-1,
        x_value_formatter=_utc_labels(end - start),
        value_formatter=figure,
        x_labels_major_count=8,
        show_minor_x_labels=False,
        x_title="UTC",
        title=redact(_title(chart)),
    )
    if firing:
        plot.add("firing" if chart.firing and chart.firing[1] is None else "fired", firing, fill=True)
    for series in drawn:
        plot.add(redact(series.name), decimate(series.points, POINTS_DRAWN))
    if chart.threshold is not None:
        plot.add(
            f"threshold {figure(chart.threshold)}",
            [(start, chart.threshold), (end, chart.threshold)],
            stroke_style={"dasharray": "8, 4"},
        )
    return plot


def _firing_band(chart: Chart, start: float, end: float) -> list[tuple[float, float]]:
    """The firing period as the two top corners of a band filled down to the axis (none: empty)."""
    if chart.firing is None:
        return []
    began, ended = chart.firing
    began, ended = max(began, start), min(ended if ended is not None else end, end)
    if ended <= began:
        return []
    top = max([v for s in chart.series for v in s.values] + [chart.threshold or 0.0])
    return [(began, top), (ended, top)]


def render_png(chart: Chart) -> bytes:
    """The chart as a PNG (redacted before it is drawn); ValueError when there is nothing to draw."""
    import resvg_py

    if not chart.has_data:
        raise ValueError("no data to draw")
    svg = _plot(chart).render()
    fonts = font_files()
    return resvg_py.svg_to_bytes(
        svg_string=svg if isinstance(svg, str) else svg.decode(),
        skip_system_fonts=bool(fonts),
        font_files=list(fonts) or None,
        shape_rendering="optimize_speed",
    )


def chart_file(chart: Chart, stem: str, with_lines: bool = False) -> tuple[dict, bytes] | None:
    """The outbox upload of a chart: ({"text", "file": {"filename", "title"}}, PNG bytes); None when
    there is nothing to draw or drawing failed (logged: the report goes on without it). `with_lines`:
    the text also has each series' sparkline and min / max / last (when no report says them)."""
    if not chart.has_data:
        return None
    started = time.perf_counter()
    try:
        png = render_png(chart)
    except Exception as exc:  # a chart never sinks the message it illustrates
        log.warning("chart_not_drawn", error=type(exc).__name__, detail=str(exc)[:200])
        return None
    log.debug("chart_drawn", ms=round((time.perf_counter() - started) * 1000, 1), bytes=len(png))
    slug = "-".join("".join(c if c.isalnum() else " " for c in stem.lower()).split())[:60] or "chart"
    title = redact(chart.title)
    text = f":chart_with_upwards_trend: {escape(title)}" + (f" (and {chart.more} more series)" if chart.more else "")
    if with_lines:
        text += "".join(f"\n`{escape(redact(describe(series)))}`" for series in chart.series)
    return {"text": text, "file": {"filename": f"{slug}.png", "title": title}}, png


async def chart_uploads(findings: list[Finding]) -> list[tuple[dict, bytes]]:
    """The charts of a report's findings as outbox uploads, drawn off the event loop."""
    drawn = []
    for number, finding in enumerate(findings):
        if finding.chart is not None:
            upload = await asyncio.to_thread(chart_file, finding.chart, f"{finding.component}-{number}")
            if upload is not None:
                drawn.append(upload)
    return drawn
