"""`nettrail report DIR --baseline auto`: which earlier snapshot of a
schedule directory (DIR's parent) the capture is compared with. The most
recent earlier snapshot of the same host without failures, at the same
time of day (within TIME_OF_DAY_S), on the same day of the week where the
history has one; the answer says which and why."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from nettrail.errors import BadCapture, NettrailError, UsageError
from nettrail.format.meta import parse_time
from nettrail.report.reader import open_capture
from nettrail.schedule.snapshots import snapshot_dirs
from nettrail.units import printable

TIME_OF_DAY_S = 30 * 60
MAX_CANDIDATES = 5_000  # snapshots looked at (newest first); retention keeps fewer


@dataclass
class Candidate:
    path: Path
    host: str
    start: float
    failure: str | None       # why it is no baseline, or None


def _failure(meta: dict) -> str | None:
    if not meta.get("ended_at"):
        return "did not finish"
    if meta.get("interrupted"):
        return "was interrupted"
    failed = [name for name, p in meta.get("probes", {}).items() if p.get("status") == "failed"]
    if failed:
        return f"probe {', '.join(failed)} failed"
    if sum(meta.get("lost_events", {}).values()):
        return "lost events"
    return None


def _candidate(path: Path) -> Candidate | None:
    try:
        capture = open_capture(path)
    except NettrailError:
        return None
    try:
        meta = capture.meta
        return Candidate(path, meta["host"], parse_time(meta["started_at"]) or 0.0,
                         _failure(meta))
    finally:
        capture.close()


def _seconds_apart_in_day(a: dt.datetime, b: dt.datetime) -> float:
    apart = abs((a.hour * 3600 + a.minute * 60 + a.second)
                - (b.hour * 3600 + b.minute * 60 + b.second))
    return min(apart, 86_400 - apart)


def pick(directory: Path) -> tuple[Path, str]:
    """The baseline for the snapshot at `directory`, and why it was chosen."""
    me = _candidate(directory)
    if me is None:
        raise BadCapture(f"{directory} is not a readable capture",
                         "pass a snapshot directory of a schedule ROOT")
    root = directory.parent
    try:
        paths = snapshot_dirs(root)[:MAX_CANDIDATES]
    except OSError as exc:
        raise UsageError(f"--baseline auto: cannot list {root} ({exc.strerror})",
                         "pass the baseline capture directory instead of auto") from None
    mine = dt.datetime.fromtimestamp(me.start, dt.timezone.utc)
    earlier = []
    for path in paths:
        if path.name == directory.name:
            continue
        c = _candidate(path)
        if c is None or c.host != me.host or c.start >= me.start or c.failure:
            continue
        earlier.append(c)
    earlier.sort(key=lambda c: -c.start)
    when = [(c, dt.datetime.fromtimestamp(c.start, dt.timezone.utc)) for c in earlier]
    same_time = [(c, t) for c, t in when if _seconds_apart_in_day(t, mine) <= TIME_OF_DAY_S]
    same_day = [(c, t) for c, t in same_time if t.weekday() == mine.weekday()]
    host = printable(me.host)
    window = f"±{TIME_OF_DAY_S // 60} min"
    if same_day:
        c, t = same_day[0]
        return c.path, (f"the most recent earlier snapshot of {host} without failures at the "
                        f"same time of day ({window}) and day of the week ({t:%A}): "
                        f"{c.path.name}")
    if same_time:
        c, t = same_time[0]
        return c.path, (f"the most recent earlier snapshot of {host} without failures at the "
                        f"same time of day ({window}); none on a {mine:%A} yet: {c.path.name}")
    raise UsageError(f"--baseline auto: no earlier snapshot of {host} without failures at "
                     f"this time of day ({window}) in {root}",
                     "pass a baseline capture directory instead of auto")
