"""`nettrail report`: capture directories in (one, or a fleet: one per host),
one self-contained HTML file out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from nettrail.errors import UsageError
from nettrail.files import OutputDir, write_private
from nettrail.format import REPORT
from nettrail.report import charts
from nettrail.report.aggregate import ReportData, aggregate
from nettrail.report.reader import open_capture, open_captures
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
                 cancelled: Callable[[], bool] | None = None,
                 dir_fd: int | None = None) -> Path:
    """A fleet report (several directories) needs `output`; one capture's
    report goes into its directory by default, through the fd it was read
    by. `cancelled` is asked now and then while the logs are read: True gives
    up (Cancelled), e.g. when a service must stop within its timeout.
    `dir_fd`: the one capture's directory, already open (a capture's own
    report): nothing of it is looked up by path again."""
    paths = directories if isinstance(directories, list) else [directories]
    if len(paths) > 1 and output is None:
        raise UsageError("a report over several captures needs -o FILE",
                         "say where the fleet report goes, e.g. -o fleet.html")
    captures = ([open_capture(paths[0], cancelled, dir_fd)] if dir_fd is not None
                else open_captures(paths, cancelled))
    try:
        data = aggregate(captures, title, note)
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        html = render(data, make_charts(data), now).encode()
        if output is not None:
            write_private(output, html)
            return output
        with OutputDir.for_open_dir(paths[0], captures[0].dir_fd) as out:
            out.write(REPORT, html)
        return paths[0] / REPORT
    finally:
        for capture in captures:
            capture.close()
