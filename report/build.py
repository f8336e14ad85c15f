"""`nettrail report`: capture directories in (one, or a fleet: one per host),
one self-contained HTML file out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from nettrail.errors import UsageError
from nettrail.files import write_private
from nettrail.format import REPORT
from nettrail.report import charts
from nettrail.report.aggregate import ReportData, aggregate
from nettrail.report.reader import open_captures
from nettrail.report.render import render


def make_charts(data: ReportData) -> dict[str, charts.Chart | list[charts.Chart] | None]:
    """Every chart; the page shows those whose section has data."""
    return {"bandwidth": charts.bandwidth_rates(data.bandwidth, data.clock),
            "sessions": charts.sessions_over_time(data.sessions, data.clock),
            "dns": charts.dns_over_time(data.dns, data.clock),
            "latency": charts.latency_by_name(data.dns.hosts),
            "durations": charts.durations(data.sessions.durations)}


def write_report(directories: Path | list[Path], output: Path | None = None,
                 title: str | None = None, note: str | None = None,
                 cancelled: Callable[[], bool] | None = None) -> Path:
    """A fleet report (several directories) needs `output`; one capture's
    report goes into its directory by default. `cancelled` is asked now and
    then while the logs are read: True gives up (Cancelled), e.g. when a
    service must stop within its timeout."""
    paths = directories if isinstance(directories, list) else [directories]
    if len(paths) > 1 and output is None:
        raise UsageError("a report over several captures needs -o FILE",
                         "say where the fleet report goes, e.g. -o fleet.html")
    data = aggregate(open_captures(paths, cancelled), title, note)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    html = render(data, make_charts(data), now)
    out = output or paths[0] / REPORT
    write_private(out, html.encode())
    return out
