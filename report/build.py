"""`nettrail report`: capture directories in (one, or a fleet: one per host),
one self-contained HTML file out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from nettrail.errors import UsageError
from nettrail.files import OutputDir, write_private
from nettrail.format import REPORT
from nettrail.units import printable
from nettrail.report import charts
from nettrail.report.aggregate import ReportData, aggregate
from nettrail.report.changes import Changes, compare
from nettrail.report.profile import Profile, profile
from nettrail.report.reader import CaptureDir, open_capture, open_captures
from nettrail.report.render import render

class Baseline(NamedTuple):
    """A capture's baseline, and why it was chosen (shown on the page)."""
    path: Path
    why: str
    dir_fd: int | None = None  # its directory already open (auto): read through it


def make_charts(data: ReportData, baseline: Profile | None = None
                ) -> dict[str, charts.Chart | list[charts.Chart] | None]:
    """Every chart; the page shows those whose section has data. `baseline`:
    drawn faintly behind the bandwidth charts."""
    return {"bandwidth": charts.bandwidth_rates(data.bandwidth, data.clock, baseline),
            "sessions": charts.sessions_over_time(data.sessions, data.clock),
            "dns": charts.dns_over_time(data.dns, data.clock),
            "latency": charts.latency_by_name(data.dns.hosts),
            "durations": charts.durations(data.sessions.durations)}


def write_report(directories: Path | list[Path], output: Path | None = None,
                 title: str | None = None, note: str | None = None,
                 cancelled: Callable[[], bool] | None = None,
                 dir_fd: int | None = None, baselines: list[Baseline] | None = None
                 ) -> Path:
    """A fleet report (several directories) needs `output`; one capture's
    report goes into its directory by default, through the fd it was read
    by. `baselines`: compared with the captures of the same host (a single
    capture: with the one baseline, whatever its host). `cancelled` is asked
    now and then while the logs are read: True gives up (Cancelled), e.g.
    when a service must stop within its timeout.
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
        changes, behind = _compared(captures, baselines or [], cancelled, data)
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        html = render(data, make_charts(data, behind), now, changes).encode()
        if output is not None:
            write_private(output, html)
            return output
        with OutputDir.for_open_dir(paths[0], captures[0].dir_fd) as out:
            out.write(REPORT, html)
        return paths[0] / REPORT
    finally:
        for capture in captures:
            capture.close()


def _compared(captures: list[CaptureDir], baselines: list[Baseline],
              cancelled: Callable[[], bool] | None, data: ReportData
              ) -> tuple[list[Changes], Profile | None]:
    """Each capture against its baseline (read through the same bounded
    reader, one at a time), and the baseline the charts draw (one capture)."""
    if not baselines:
        return [], None
    fleet = len(captures) > 1
    wanted = {c.meta["host"]: c for c in captures}
    out, behind = [], None
    for path, why, dir_fd in baselines:
        base = open_capture(path, cancelled, dir_fd)
        try:
            host = base.meta["host"]
            capture = captures[0] if not fleet else wanted.pop(host, None)
            if capture is None:
                data.warnings.append(f"baseline {path}: no capture of its host "
                                     f"{printable(host)} in this report")
                continue
            before = profile(base)
        finally:
            base.close()
        data.warnings.extend(f"baseline: {w}" for w in before.warnings)
        again = open_capture(capture.path, cancelled, capture.dir_fd)  # its logs read again
        try:
            now = profile(again)
        finally:
            again.close()
        changes = compare(before, now, why)
        changes.host = now.host if fleet else None
        out.append(changes)
        behind = None if fleet else before
    for host in wanted if fleet else ():
        data.warnings.append(f"{printable(host)}: no baseline of this host was given")
    return out, behind
