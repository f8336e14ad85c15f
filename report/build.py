"""`nettrail report`: capture directory in, one self-contained HTML file out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from nettrail.report import charts
from nettrail.report.aggregate import ReportData, aggregate
from nettrail.files import write_private
from nettrail.logformat import REPORT
from nettrail.report.reader import open_capture
from nettrail.report.render import render


def _started(data: ReportData) -> float:
    try:
        return dt.datetime.fromisoformat(data.header.started_at.replace("Z", "+00:00")
                                         ).timestamp()
    except ValueError:
        return min((lk.ts for lk in data.dns.lookups), default=0.0)


def make_charts(data: ReportData) -> dict[str, bytes]:
    """Only the charts that have something to show."""
    out = {}
    if data.bandwidth.rows:
        out["bandwidth"] = charts.bandwidth_timeline(data.bandwidth)
    if data.sessions.durations_ms:
        out["durations"] = charts.session_durations(data.sessions.durations_ms)
    if data.sessions.endpoints:
        out["endpoints"] = charts.sessions_per_endpoint(data.sessions.endpoints)
    if data.dns.lookups:
        out["dns_latency"] = charts.dns_latency_by_host(data.dns)
        out["dns_time"] = charts.dns_over_time(data.dns, _started(data))
    return out


def write_report(directory: Path, output: Path | None = None, title: str | None = None,
                 note: str | None = None) -> Path:
    data = aggregate(open_capture(directory), title, note)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    html = render(data, make_charts(data), now)
    out = output or directory / REPORT
    write_private(out, html.encode())
    return out
