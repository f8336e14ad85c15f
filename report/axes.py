"""Chart geometry for inline SVG: the shapes a chart is drawn with and its
axes (report/charts.py builds the charts from the report's data;
templates/charts.j2 draws them).

Every time chart has the same width and the same plot margins and maps the
window's start..end onto the same x range, so the same clock time is the same
pixel column in all of them."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from nettrail.report.clock import Clock
from nettrail.units import SI_PREFIXES

WIDTH = 960                 # viewBox width of every chart
LEFT, RIGHT = 92, 16        # plot margins: the same in every time chart
PLOT_W = WIDTH - LEFT - RIGHT
TOP = 10
BOTTOM = 34                 # room for the time axis labels
LABEL_CHARS = 40
EDGE = 40                   # an x label this close to an edge would be cut off centred
TIME_TICKS = 8
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 5", "10 4")
NICE_TIME_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
                   7200, 10800, 21600, 43200, 86400)


def short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


@dataclass
class Tick:
    pos: float
    label: str
    title: str = ""
    t: float | None = None       # the clock time of a time tick (for tests and tools)


@dataclass
class Line:
    points: str                  # SVG path data
    cls: str                     # colour class
    dash: str
    label: str


@dataclass
class Mark:
    x: float
    y: float
    shape: str                   # cross / ring / triangle
    cls: str
    title: str


@dataclass
class Bar:
    x: float
    y: float
    w: float
    h: float
    cls: str
    title: str = ""
    bin: int | None = None       # a duration bar: the groups of its sessions (histogram.py)


@dataclass
class Hit:
    """A transparent column with a tooltip: what happened then, in both zones."""
    x: float
    w: float
    title: str


@dataclass
class Legend:
    label: str
    cls: str
    dash: str = ""
    shape: str = "line"          # line / bar / cross / ring / triangle


@dataclass
class Chart:
    id: str
    title: str
    height: float
    y_ticks: list[Tick]
    y_label: str
    x_ticks: list[Tick] = field(default_factory=list)
    x_label: str = ""
    lines: list[Line] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    legend: list[Legend] = field(default_factory=list)
    timed: bool = False
    start: float = 0.0           # timed charts: the window, for the page's crosshair
    end: float = 0.0
    left: int = LEFT
    plot_w: int = PLOT_W

    @property
    def bottom(self) -> float:
        return self.height - BOTTOM

    def anchor(self, pos: float) -> str:
        """An x label near either end of the axis hangs inside the plot: never
        past the chart's edge, nor over the y labels."""
        return ("end" if pos > WIDTH - EDGE else "start" if pos < self.left + EDGE / 2
                else "middle")


# -- axes -------------------------------------------------------------------------

def nice_step(rough: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least `rough`."""
    if rough <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough * (1 - 1e-9))


def value_ticks(top: float, unit: Callable[[float], tuple[float, str]], count: int = 4
                ) -> tuple[float, list[tuple[float, str]]]:
    """(axis top, [(value, label)]): steps nice in the unit the labels show."""
    scale, suffix = unit(top)
    step = nice_step(top / scale / count) * scale if top > 0 else scale
    n = max(1, math.ceil(top / step - 1e-9))
    return n * step, [(i * step, f"{i * step / scale:g}{suffix}") for i in range(n + 1)]


def bit_unit(top: float) -> tuple[float, str]:
    power = min(int(math.log10(top) // 3), len(SI_PREFIXES) - 1) if top >= 1000 else 0
    return 1000.0 ** power, f" {SI_PREFIXES[power]}bit/s"


def count_unit(_top: float) -> tuple[float, str]:
    return 1.0, ""


def time_ticks(clock: Clock) -> list[Tick]:
    """Ticks at round local times (…:00, :05, …), at most about TIME_TICKS."""
    length = clock.end - clock.start
    step = next((s for s in NICE_TIME_STEPS if length / s <= TIME_TICKS), NICE_TIME_STEPS[-1])
    offset = dt.datetime.fromtimestamp(clock.start, clock.tz).utcoffset()
    shift = offset.total_seconds() if offset else 0.0
    first = math.ceil((clock.start + shift) / step - 1e-9) * step - shift
    fmt = "%H:%M:%S" if step < 60 or length < 600 else "%H:%M"
    ticks, t = [], first
    while t <= clock.end + 1e-6:
        local = dt.datetime.fromtimestamp(t, clock.tz)
        label = local.strftime(fmt) + (f".{local.microsecond // 100000}" if step < 1 else "")
        utc = dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        ticks.append(Tick(x_of(clock, t), label, utc, round(t, 3)))
        t += step
    return ticks


def x_of(clock: Clock, ts: float) -> float:
    span = max(clock.end - clock.start, 1e-9)
    return round(LEFT + PLOT_W * min(max((ts - clock.start) / span, 0.0), 1.0), 2)


def when(clock: Clock, start: float, end: float) -> str:
    """A span in local time with its zone, then in UTC (tooltips)."""
    local = lambda ts, f: dt.datetime.fromtimestamp(ts, clock.tz).strftime(f)  # noqa: E731
    utc = lambda ts: dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%H:%M:%S")  # noqa
    return (f"{local(start, '%H:%M:%S')}–{local(end, '%H:%M:%S')} {clock.zone.split(',')[0]} "
            f"({utc(start)}–{utc(end)} UTC)")


def bucket_when(clock: Clock, n: int) -> str:
    return when(clock, clock.bucket_start(n), clock.bucket_start(n) + clock.bucket_s)


def timed_chart(clock: Clock, chart_id: str, title: str, height: float, y_label: str,
           y_ticks: list[Tick]) -> Chart:
    return Chart(chart_id, title, height, y_ticks, y_label, time_ticks(clock),
                 f"local time ({clock.zone})", timed=True, start=clock.start, end=clock.end)


def y_of(value: float, top: float, chart_top: float, bottom: float) -> float:
    return round(bottom - (bottom - chart_top) * (value / top if top else 0), 2)
