"""The session-duration histogram's bins, once for the chart and the
connection table: a bar of the chart and the groups with sessions in it
(`ConnectionGroup.duration_bins`) are counted from the same sketch buckets,
so following a bar shows every group of its sessions."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from nettrail.report.bounded import LogSketch

PER_DECADE = 5             # bars per power of ten


def log_decades(low: float, high: float) -> list[float]:
    """Decades from below `low` to above `high`: two at least (a scale of one
    tick has no span: lookups all faster than the 0.01 ms floor had one)."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    return [10.0 ** p for p in range(first, max(last, first + 1) + 1)]


@dataclass(frozen=True)
class DurationBins:
    decades: list[float]       # ms, the axis' ticks

    @property
    def count(self) -> int:
        return PER_DECADE * (len(self.decades) - 1)

    def of(self, value_ms: float) -> int:
        low = self.decades[0]
        position = (math.log10(max(value_ms, low)) - math.log10(low)) * PER_DECADE
        return min(int(position), self.count - 1)

    def edges(self, index: int) -> tuple[float, float]:
        """The durations bar `index` stands for, ms: from, up to."""
        low = self.decades[0]
        return low * 10 ** (index / PER_DECADE), low * 10 ** ((index + 1) / PER_DECADE)


def duration_bins(sketch: LogSketch) -> DurationBins | None:
    if not sketch.count:
        return None
    return DurationBins(log_decades(max(sketch.min, 0.01),
                                    max(sketch.max, sketch.min * 10, 0.1)))


def mark(groups: Iterable, sketch: LogSketch) -> None:
    """Each group's bins: those its closed sessions' durations fall in."""
    bins = duration_bins(sketch)
    if bins is None:
        return
    for g in groups:
        if g.durations is not None:
            g.duration_bins = sorted({bins.of(value) for value, _n in g.durations.items()})
