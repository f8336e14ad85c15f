"""Stage 2 of the report: charts as SVG bytes (matplotlib, Agg, no display).

Labels come from untrusted names: mathtext is off (a `$` stays a `$`) and the
SVG is embedded as an image, where nothing in it can run."""

from __future__ import annotations

import io
import math

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from nettrail.report.aggregate import Bandwidth, Dns, Endpoint, endpoint  # noqa: E402
from nettrail.units import human_bytes  # noqa: E402

STYLE = {"text.parse_math": False, "svg.hashsalt": "nettrail", "svg.fonttype": "none",
         "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100}
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
          "#bcbd22", "#7f7f7f"]
FAILED = "#d62728"
LABEL_CHARS = 40
RASTER_DPI = 150
TOP_HOSTS_CHART = 15
TOP_HOSTS_COLORED = 8


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def _svg(fig: plt.Figure) -> bytes:
    """SVG bytes; point clouds are rasterized inside it (RASTER_DPI) so 20,000
    lookups stay small, axes and text stay vector."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None},
                dpi=RASTER_DPI)
    plt.close(fig)
    return buf.getvalue()


_bytes_axis = FuncFormatter(lambda v, _pos: human_bytes(v))
# plain numbers on log axes (mathtext is off, so the default 10^x cannot render)
_plain_axis = FuncFormatter(lambda v, _pos: f"{v:g}")


def _log(axis) -> None:
    axis.set_major_formatter(_plain_axis)
    axis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))


def bandwidth_timeline(bw: Bandwidth) -> bytes:
    """RX and TX per interval for the top processes, on one time axis."""
    with plt.rc_context(STYLE):
        fig, (rx_ax, tx_ax) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
        ends = [bw.interval_s * (i + 1) for i in range(bw.intervals)]
        for color, s in zip(COLORS, bw.series):
            rx_ax.plot(ends, s.rx_bytes, marker="o", ms=3, color=color, label=_short(s.label))
            tx_ax.plot(ends, s.tx_bytes, marker="o", ms=3, color=color)
        for ax, title in ((rx_ax, "received per interval"), (tx_ax, "sent per interval")):
            ax.set_title(title, loc="left")
            ax.yaxis.set_major_formatter(_bytes_axis)
            ax.set_ylim(bottom=0)
        tx_ax.set_xticks(ends if len(ends) <= 15 else ends[::math.ceil(len(ends) / 15)])
        tx_ax.set_xlabel("seconds since the window started (end of each interval)")
        rx_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        return _svg(fig)


def session_durations(durations_ms: list[float]) -> bytes:
    """How long closed sessions lasted (log scale)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6, 3))
        low = max(min(durations_ms), 0.01)
        high = max(max(durations_ms), low * 10)
        bins = np.geomspace(low, high, 31)
        ax.hist([max(d, low) for d in durations_ms], bins=bins, color=COLORS[0])
        ax.set_xscale("log")
        _log(ax.xaxis)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("session duration (ms, log scale)")
        ax.set_ylabel("sessions")
        return _svg(fig)


def sessions_per_endpoint(endpoints: list[Endpoint]) -> bytes:
    with plt.rc_context(STYLE):
        shown = endpoints[:TOP_HOSTS_CHART][::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(shown) + 1))
        labels = [_short(endpoint(e.address, e.port) +
                         (f" {e.hostnames[0]}" if e.hostnames else "")) for e in shown]
        ax.barh(labels, [e.sessions for e in shown], color=COLORS[0])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("sessions")
        return _svg(fig)


def dns_latency_by_host(dns: Dns) -> bytes:
    """Every lookup's latency per hostname (slowest p95 at the top), failures red."""
    hosts = [h.host for h in dns.hosts[:TOP_HOSTS_CHART]][::-1]
    row = {h: i for i, h in enumerate(hosts)}
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(hosts) + 1.2))
        for ok, marker, color, label in ((True, "o", COLORS[0], "answered"),
                                         (False, "x", FAILED, "failed or pending")):
            points = [(max(lk.latency_ms, 0.001), row[lk.host]) for lk in dns.lookups
                      if lk.host in row and lk.ok == ok]
            if points:
                ax.scatter(*zip(*points), marker=marker, color=color, s=18, alpha=0.7,
                           label=label, rasterized=True)
        for h in dns.hosts[:TOP_HOSTS_CHART]:
            if h.p95_ms is not None:
                ax.plot([max(h.p95_ms, 0.001)] * 2, [row[h.host] - 0.35, row[h.host] + 0.35],
                        color="black", lw=1.5)
        ax.set_yticks(range(len(hosts)), [_short(h) for h in hosts])
        ax.set_xscale("log")
        _log(ax.xaxis)
        ax.set_xlabel("latency (ms, log scale); black bar: p95")
        ax.legend(loc="lower right", frameon=False)
        return _svg(fig)


def dns_over_time(dns: Dns, start_ts: float) -> bytes:
    """Lookups over the window, coloured by hostname."""
    top = [h.host for h in sorted(dns.hosts, key=lambda h: -h.count)[:TOP_HOSTS_COLORED]]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(9, 3.2))
        for color, host in zip(COLORS, [*top, None]):
            points = [(lk.ts - start_ts, max(lk.latency_ms, 0.001)) for lk in dns.lookups
                      if (lk.host == host if host else lk.host not in top)]
            if points:
                ax.scatter(*zip(*points), s=14, color=color, alpha=0.8, rasterized=True,
                           label=_short(host) if host else "other hostnames")
        failed = [(lk.ts - start_ts, max(lk.latency_ms, 0.001)) for lk in dns.lookups
                  if not lk.ok]
        if failed:
            ax.scatter(*zip(*failed), s=40, facecolors="none", edgecolors=FAILED,
                       label="failed or pending", rasterized=True)
        ax.set_yscale("log")
        _log(ax.yaxis)
        ax.set_xlabel("seconds since the window started")
        ax.set_ylabel("latency (ms)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        return _svg(fig)
