"""`nettrail report`: capture directory in, one self-contained HTML file out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from nettrail.files import write_private
from nettrail.logformat import REPORT
from nettrail.report import charts
from nettrail.report.aggregate import ReportData, aggregate
from nettrail.report.reader import open_capture
from nettrail.report.render import render


def make_charts(data: ReportData) -> dict[str, charts.Chart | list[charts.Chart] | None]:
    """Every chart; the page shows those whose section has data."""
    return {"bandwidth": charts.bandwidth_rates(data.bandwidth, data.clock),
            "sessions": charts.sessions_over_time(data.sessions, data.clock),
            "dns": charts.dns_over_time(data.dns, data.clock),
            "latency": charts.latency_by_name(data.dns.hosts),
            "durations": charts.durations(data.sessions.durations)}


def write_report(directory: Path, output: Path | None = None, title: str | None = None,
                 note: str | None = None, cancelled: Callable[[], bool] | None = None) -> Path:
    """`cancelled` is asked now and then while the logs are read: True gives
    up (Cancelled), e.g. when a service must stop within its timeout."""
    data = aggregate(open_capture(directory, cancelled), title, note)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    html = render(data, make_charts(data), now)
    out = output or directory / REPORT
    write_private(out, html.encode())
    return out
