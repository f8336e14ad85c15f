"""Stage 2 of the report: the charts, built from the report's data in the
geometry of report/axes.py (templates/charts.j2 draws them; every label goes
through Jinja's autoescaping there).

Every time chart shares one x range, so a DNS stall, a burst of sessions and
a bandwidth drop line up. Series differ by dash pattern or marker shape as
well as colour. Labels are `printable` already (aggregate); they are
shortened here."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence

from nettrail.report.axes import (BOTTOM, DASHES, LEFT, PLOT_W, RIGHT, TOP, WIDTH, Bar, Chart,
                                  Hit, Legend, Line, Mark, Tick, bit_unit, bucket_when,
                                  count_unit, short, timed_chart, value_ticks, when, x_of,
                                  y_of)
from nettrail.report.bandwidth import Bandwidth, Interval
from nettrail.report.clock import Clock
from nettrail.report.dns import SLOW_LOOKUP_MS, Dns, HostStats
from nettrail.report.histogram import duration_bins, log_decades
from nettrail.report.sessions import Sessions
from nettrail.report.bounded import LogSketch
from nettrail.report.profile import Profile
from nettrail.units import bytes_rate, human_bytes, human_ms, many


# -- bandwidth --------------------------------------------------------------------

def bandwidth_rates(bw: Bandwidth, clock: Clock, baseline: Profile | None = None
                    ) -> list[Chart]:
    """Received and sent bit/s per interval, top owners and the rest;
    `baseline`'s total drawn faintly behind, by offset within the window."""
    charts = []
    for direction, attr, title in (("rx", "rx_bytes", "received"), ("tx", "tx_bytes", "sent")):
        rates = [[8 * b / iv.seconds if iv.seconds else 0.0
                  for b, iv in zip(getattr(s, attr), bw.intervals)] for s in bw.series]
        behind = ([8 * n / baseline.bin_s for n in getattr(baseline, f"{direction}_per_bin")]
                  if baseline else [])
        top, ticks = value_ticks(max((max(r, default=0) for r in [*rates, behind]), default=0)
                                 or 1000, bit_unit)
        height = 210
        chart = timed_chart(clock, f"chart-bw-{direction}", f"{title} (bit/s per interval)",
                       height, "bit/s", [])
        chart.y_ticks = [Tick(y_of(v, top, TOP, chart.bottom), label) for v, label in ticks]
        if baseline:
            chart.lines.append(Line(_baseline_steps(clock, baseline, behind, top, chart.bottom),
                                    "baseline", "", "baseline (all)"))
            chart.legend.append(Legend(f"baseline: all, {baseline.started_at}", "baseline"))
        for n, (s, series_rates) in enumerate(zip(bw.series, rates)):
            cls, dash = f"s{n}", DASHES[n % len(DASHES)]
            chart.lines.append(Line(_steps(clock, bw, series_rates, top, chart.bottom), cls,
                                    dash, short(s.label)))
            chart.legend.append(Legend(short(s.label), cls, dash))
        chart.hits = [Hit(x_of(clock, iv.end - iv.seconds),
                          x_of(clock, iv.end) - x_of(clock, iv.end - iv.seconds),
                          _interval_title(clock, iv, bw, attr, n))
                      for n, iv in enumerate(bw.intervals)]
        charts.append(chart)
    return charts


def _steps(clock: Clock, bw: Bandwidth, rates: Sequence[float], top: float, bottom: float
           ) -> str:
    """Each interval's rate held flat across the interval."""
    parts = []
    for iv, rate in zip(bw.intervals, rates):
        y = y_of(rate, top, TOP, bottom)
        start = "M" if not parts else "L"
        parts.append(f"{start}{x_of(clock, iv.end - iv.seconds)},{y}L{x_of(clock, iv.end)},{y}")
    return "".join(parts)


def _baseline_steps(clock: Clock, baseline: Profile, rates: Sequence[float], top: float,
                    bottom: float) -> str:
    """The baseline's bins at their offsets from its start, on this window's
    clock; what lies past this window's end is left out."""
    parts = []
    for n, rate in enumerate(rates):
        start = clock.start + n * baseline.bin_s
        if start >= clock.end:
            break
        y = y_of(rate, top, TOP, bottom)
        parts.append(f"{'L' if parts else 'M'}{x_of(clock, start)},{y}"
                     f"L{x_of(clock, start + baseline.bin_s)},{y}")
    return "".join(parts)


def _interval_title(clock: Clock, iv: Interval, bw: Bandwidth, attr: str, n: int) -> str:
    rows = [f"{s.label}: {bytes_rate(getattr(s, attr)[n], iv.seconds)} "
            f"({human_bytes(getattr(s, attr)[n])})" for s in bw.series if getattr(s, attr)[n]]
    return "\n".join([when(clock, iv.end - iv.seconds, iv.end), *rows] or ["nothing"])


# -- sessions ----------------------------------------------------------------------

def sessions_over_time(ss: Sessions, clock: Clock) -> Chart:
    """Sessions opened (bars) and closed (line) per bucket; failed and
    retransmitting ones marked above."""
    top, ticks = value_ticks(max((max(b.opened, b.closed) for b in ss.buckets), default=0) or 1,
                             count_unit)
    chart = timed_chart(clock, "chart-sessions", f"sessions opened and closed per "
                   f"{clock.bucket_s:g} s", 200, "sessions", [])
    band = TOP + 14  # marks sit in a band above the bars
    chart.y_ticks = [Tick(y_of(v, top, band, chart.bottom), label) for v, label in ticks]
    width = PLOT_W / clock.buckets
    closed = []
    for n, b in enumerate(ss.buckets):
        x = x_of(clock, clock.bucket_start(n))
        if b.opened:
            y = y_of(b.opened, top, band, chart.bottom)
            chart.bars.append(Bar(x, y, max(width - 1, 0.5), chart.bottom - y, "s0"))
        y = y_of(b.closed, top, band, chart.bottom)
        closed.append(f"{'M' if not closed else 'L'}{x},{y}L{round(x + width, 2)},{y}")
        middle = round(x + width / 2, 2)
        if b.failed:
            chart.marks.append(Mark(middle, TOP + 4, "cross", "bad", f"{b.failed} failed"))
        if b.retrans:
            chart.marks.append(Mark(middle, TOP + 12, "triangle", "s3",
                                    f"{b.retrans} retransmitted"))
        chart.hits.append(Hit(x, width, f"{bucket_when(clock, n)}\n{b.opened} opened, "
                                        f"{b.closed} closed, {b.failed} refused/reset/timed "
                                        f"out, {b.retrans} retransmitted"))
    chart.lines.append(Line("".join(closed), "s1", DASHES[1], "closed"))
    chart.legend = [Legend("opened", "s0", shape="bar"), Legend("closed", "s1", DASHES[1]),
                    Legend("refused, reset or timed out", "bad", shape="cross"),
                    Legend("retransmitted", "s3", shape="triangle")]
    return chart


# -- DNS ---------------------------------------------------------------------------

def _log_y(value: float, low: float, high: float, top: float, bottom: float) -> float:
    span = math.log10(high) - math.log10(low)
    return round(bottom - (bottom - top) * (math.log10(max(value, low)) - math.log10(low))
                 / span, 2)


def dns_over_time(dns: Dns, clock: Clock) -> Chart:
    """The slowest lookup of each bucket (log scale); failures marked above."""
    worst = [v for b in dns.buckets for v in (b.max_ms, b.failed_max_ms) if v is not None]
    decades = log_decades(max(min(worst, default=1.0), 0.01),
                          max(max(worst, default=10.0), SLOW_LOOKUP_MS * 2))
    low, high = decades[0], decades[-1]
    chart = timed_chart(clock, "chart-dns", "slowest lookup per "
                   f"{clock.bucket_s:g} s (log scale)", 200, "latency", [])
    band = TOP + 14
    chart.y_ticks = [Tick(_log_y(v, low, high, band, chart.bottom), human_ms(v))
                     for v in decades]
    width = PLOT_W / clock.buckets
    path = []
    joined = False   # a bucket without lookups breaks the line: no slope across a gap
    for n, b in enumerate(dns.buckets):
        x = x_of(clock, clock.bucket_start(n))
        middle = round(x + width / 2, 2)
        if b.max_ms is not None:
            y = _log_y(b.max_ms, low, high, band, chart.bottom)
            path.append(f"{'L' if joined else 'M'}{middle},{y}")
            chart.marks.append(Mark(middle, y, "ring", "s0", human_ms(b.max_ms)))
        joined = b.max_ms is not None
        if b.failed:
            # at the wait of the longest of them (where the capture has it)
            y = (_log_y(b.failed_max_ms, low, high, band, chart.bottom)
                 if b.failed_max_ms is not None else TOP + 4)
            chart.marks.append(Mark(middle, y, "cross", "bad",
                                    f"{b.failed} failed or unanswered"
                                    + (f", the longest {human_ms(b.failed_max_ms)}"
                                       if b.failed_max_ms is not None else "")))
        if b.lookups:
            chart.hits.append(Hit(x, width, f"{bucket_when(clock, n)}\n"
                                            f"{many(b.lookups, 'lookup')}, {b.failed} failed or "
                                            f"unanswered, {b.slow} slow, slowest "
                                            f"{human_ms(b.max_ms) if b.max_ms is not None else '–'}"))
    slow_y = _log_y(SLOW_LOOKUP_MS, low, high, band, chart.bottom)
    chart.lines = [Line(f"M{LEFT},{slow_y}L{LEFT + PLOT_W},{slow_y}", "muted", DASHES[2],
                        f"{SLOW_LOOKUP_MS:g} ms"),
                   Line("".join(path), "s0", "", "slowest")]
    chart.legend = [Legend("slowest lookup", "s0", shape="ring"),
                    Legend("failed or unanswered", "bad", shape="cross"),
                    Legend(f"slow: {SLOW_LOOKUP_MS:g} ms", "muted", DASHES[2])]
    return chart


def latency_by_name(hosts: list[HostStats], count: int = 15) -> Chart | None:
    """p50–p95 bar and max mark per hostname (log scale), slowest first."""
    shown = [h for h in hosts if h.max_ms is not None][:count]
    if not shown:
        return None
    decades = log_decades(max(min(h.p50_ms or h.max_ms for h in shown), 0.01),
                          max(h.max_ms for h in shown))
    low, high = decades[0], decades[-1]
    row = 22
    height = TOP + row * len(shown) + BOTTOM
    left, plot_w = 260, WIDTH - 260 - RIGHT
    x = lambda v: round(left + plot_w * (math.log10(max(v, low)) - math.log10(low))  # noqa
                        / (math.log10(high) - math.log10(low)), 2)
    chart = Chart("chart-latency", "lookup latency per hostname (log scale)", height, [],
                  "", [Tick(x(v), human_ms(v)) for v in decades], "latency", left=left,
                  plot_w=plot_w)
    for n, h in enumerate(shown):
        y = TOP + n * row
        chart.y_ticks.append(Tick(y + row / 2, short(h.name)))
        p50, p95 = h.p50_ms or h.max_ms, h.p95_ms or h.max_ms
        chart.bars.append(Bar(x(p50), y + 5, max(x(p95) - x(p50), 2), row - 10, "s0",
                              f"{h.name}: p50 {human_ms(p50)}, p95 {human_ms(p95)}, max "
                              f"{human_ms(h.max_ms)}, {many(h.count, 'lookup')}"))
        chart.marks.append(Mark(x(h.max_ms), y + row / 2, "cross", "bad" if h.failures else
                                "s1", f"max {human_ms(h.max_ms)}"))
    chart.legend = [Legend("p50 to p95", "s0", shape="bar"), Legend("max", "s1", shape="cross")]
    return chart


def durations(sketch: LogSketch) -> Chart | None:
    """How long closed sessions lasted: a histogram on a log scale; each bar
    links to the connection groups of its sessions (report/histogram.py)."""
    binning = duration_bins(sketch)
    if binning is None:
        return None
    decades = binning.decades
    bins = [0] * binning.count
    for value, n in sketch.items():
        bins[binning.of(value)] += n
    height = 170
    top, ticks = value_ticks(max(bins), count_unit)
    chart = Chart("chart-durations", "session durations (closed sessions, log scale; a bar "
                  "links to the connection groups of its sessions)",
                  height, [], "sessions",
                  [Tick(LEFT + PLOT_W * n / (len(decades) - 1), human_ms(v))
                   for n, v in enumerate(decades)], "duration")
    bottom = chart.bottom
    chart.y_ticks = [Tick(y_of(v, top, TOP, bottom), label) for v, label in ticks]
    width = PLOT_W / len(bins)
    for n, count in enumerate(bins):
        if count:
            y = y_of(count, top, TOP, bottom)
            low_edge, high_edge = binning.edges(n)
            chart.bars.append(Bar(round(LEFT + n * width, 2), y, max(width - 1, 0.5),
                                  bottom - y, "s0",
                                  f"{many(count, 'session')} of {human_ms(low_edge)}–"
                                  f"{human_ms(high_edge)}", n))
    return chart


# -- the snapshot index ------------------------------------------------------------

TREND_RATES = ("received", "sent")
TREND_COUNTS = ("failed sessions", "failed lookups")


def trend(points: list[tuple[float, dict[str, float]]]) -> list[Chart]:
    """Headline numbers per snapshot on one time axis: average rates, then
    failure counts; each snapshot a marker, joined by lines."""
    if not points:
        return []
    first, last = points[0][0], points[-1][0]
    pad = max((last - first) * 0.02, 60.0)
    clock = Clock(first - pad, last + pad, dt.datetime.now().astimezone().tzinfo, 60.0)
    charts = []
    for chart_id, title, names, unit in (
            ("chart-trend-rates", "average rate per snapshot (bit/s)", TREND_RATES, bit_unit),
            ("chart-trend-failures", "failures per snapshot", TREND_COUNTS, count_unit)):
        top, ticks = value_ticks(max((p[name] for _, p in points for name in names),
                                     default=0) or 1, unit)
        chart = timed_chart(clock, chart_id, title, 190, "", [])
        chart.y_ticks = [Tick(y_of(v, top, TOP, chart.bottom), label) for v, label in ticks]
        for n, name in enumerate(names):
            cls, dash = f"s{n}", DASHES[n]
            coords = [(x_of(clock, ts), y_of(p[name], top, TOP, chart.bottom))
                      for ts, p in points]
            chart.lines.append(Line("".join(f"{'M' if not i else 'L'}{x},{y}"
                                            for i, (x, y) in enumerate(coords)), cls, dash,
                                    name))
            shape, label = ("ring", "triangle")[n], _trend_label(unit)
            chart.marks += [Mark(x, y, shape, cls, f"{name}: {label(p[name])}")
                            for (x, y), (_, p) in zip(coords, points)]
            chart.legend.append(Legend(name, cls, dash))
        charts.append(chart)
    return charts


def _trend_label(unit: Callable[[float], tuple[float, str]]) -> Callable[[float], str]:
    def label(value: float) -> str:
        scale, suffix = unit(value or 1)
        return f"{value / scale:.3g}{suffix}"
    return label
