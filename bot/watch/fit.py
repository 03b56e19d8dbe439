"""A straight line through samples (ordinary least squares), and when it reaches a limit — with the
window it was fitted over and how well it fits, so a prediction says how much to trust it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.units import human_duration

MIN_SAMPLES = 3
MIN_R2 = 0.5  # below it the samples do not follow a line: no prediction is made


@dataclass(frozen=True)
class Fit:
    slope: float  # units per second
    intercept: float  # the value at t = 0
    r2: float  # 1: every sample on the line
    samples: int
    window_s: float  # from the first sample to the last

    def at(self, t: float) -> float:
        return self.intercept + self.slope * t

    def seconds_until(self, limit: float, now: float) -> float | None:
        """Seconds from `now` until the line reaches `limit`; None when it does not rise or fits badly."""
        if self.slope <= 0 or self.r2 < MIN_R2:
            return None
        return max(0.0, (limit - self.at(now)) / self.slope)

    def quality(self) -> str:
        return f"fit over {self.samples} samples in the last {human_duration(self.window_s)}, R² {self.r2:.2f}"


def linear_fit(points: Sequence[tuple[float, float]]) -> Fit | None:
    """The least-squares line through (t, value) points; None for fewer than MIN_SAMPLES or one instant."""
    n = len(points)
    if n < MIN_SAMPLES:
        return None
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
    intercept = mean_v - slope * mean_t
    total = sum((v - mean_v) ** 2 for _, v in points)
    residual = sum((v - (intercept + slope * t)) ** 2 for t, v in points)
    r2 = 1.0 - residual / total if total else 1.0
    window = max(t for t, _ in points) - min(t for t, _ in points)
    return Fit(slope, intercept, r2, n, window)


def since_last_drop(points: Sequence[tuple[float, float]], drop: float) -> list[tuple[float, float]]:
    """The points after the last fall of more than `drop` (a cleanup restarts the trend)."""
    start = 0
    for i in range(1, len(points)):
        if points[i - 1][1] - points[i][1] > drop:
            start = i
    return list(points[start:])
