"""The index of a snapshot root (nettrail schedule --dir ROOT): a trend of
the headline numbers on a time axis, then one line per capture, newest first,
each linking its report, with its top talker and slowest name; captures that
failed or did not finish are listed as such.

Headlines are cached in ROOT/index.json; a capture missing from it (or a
damaged cache) is read again from its logs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from nettrail import jsonio
from nettrail.errors import BadCapture, NettrailError
from nettrail.files import read_regular, write_private
from nettrail.headline import Headline as Numbers
from nettrail.format import META, PROBES, READABLE_FORMATS
from nettrail.format import meta as meta_format
from nettrail.format.meta import LOST_CAUSES, parse_time
from nettrail.metrics import TOP_PROGRAMS, Program, Runs, Snapshot
from nettrail.report.labels import process_label
from nettrail.report.bounded import HeavyHitters
from nettrail.report.charts import trend
from nettrail.report.reader import CaptureDir, open_capture
from nettrail.report.render import render_index
from nettrail.schedule.outliers import outliers
from nettrail.units import human_ms

# ASCII digits only (\d takes any script's); matched whole (no "$" before a newline)
SNAPSHOT_NAME = re.compile(r"([0-9]{8}T[0-9]{6}Z)(?:-[0-9]{1,6})?", re.ASCII)
NAME_TIME = "%Y%m%dT%H%M%SZ"
FUTURE_SLACK = dt.timedelta(days=1)  # clocks step; a later name is not ours
CACHE = "index.json"
INDEX = "index.html"
TOP_TALKERS_KEPT = 1_000
RUN_NOTES_KEPT = 50  # failed or skipped runs listed without a snapshot


@dataclass
class Headline:
    name: str
    started_at: str
    trigger: str
    interrupted: bool
    rx_bytes: int
    tx_bytes: int
    sessions: int
    lookups: int
    failed_lookups: int
    slowest: str | None
    lost_events: int
    failed_probes: list[str]
    has_report: bool
    top_talker: str | None = None
    seconds: float = 0.0          # the window's real length: rates are bytes over it
    failed_sessions: int = 0
    status: str = "ok"            # ok / unfinished (no end time) / failed / skipped
    reason: str | None = None     # why a run failed or was skipped (from the service)


def _named_like_snapshot(name: str) -> bool:
    m = SNAPSHOT_NAME.fullmatch(name)
    try:
        when = dt.datetime.strptime(m.group(1), NAME_TIME) if m else None
    except ValueError:  # 20261399T...: digits, but no time
        return False
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return when is not None and when <= now + FUTURE_SLACK


def is_snapshot(root_fd: int, name: str) -> bool:
    """Whether root/name is one of nettrail's snapshots: a snapshot name, a
    real directory (a symlink is not followed), with a nettrail meta.json
    that is a regular file. Retention deletes nothing else."""
    if not _named_like_snapshot(name):
        return False
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=root_fd)
    except OSError:  # a symlink, a file, gone
        return False
    try:
        meta = jsonio.loads(read_regular(META, meta_format.MAX_BYTES, fd))
    except (OSError, ValueError, NettrailError):
        return False
    finally:
        os.close(fd)
    return isinstance(meta, dict) and meta.get("format") in READABLE_FORMATS


def snapshot_dirs(root: Path) -> list[Path]:
    """Snapshot directories under root, newest first."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        names = [name for name in os.listdir(fd) if is_snapshot(fd, name)]
    finally:
        os.close(fd)
    return [root / name for name in sorted(names, reverse=True)]


def snapshot_name(root: Path, when: dt.datetime) -> Path:
    """A new, unused directory name for a snapshot started at `when`."""
    base = when.astimezone(dt.timezone.utc).strftime(NAME_TIME)
    path, n = root / base, 0
    while path.exists():
        n += 1
        path = root / f"{base}-{n}"
    return path


def numbers(capture: CaptureDir) -> Numbers:
    """The capture's own summary (meta.json), or, for captures made without
    one, the same numbers counted from its logs."""
    summary = Numbers.from_json(capture.meta.get("summary"))
    if summary is None:
        summary = Numbers()
        for probe in PROBES:
            for block in capture.blocks(probe):
                summary.add(probe, block)
    return summary


class _Talker:
    weight = error = 0.0
    rx_bytes = tx_bytes = 0


def talkers(capture: CaptureDir) -> tuple[str | None, list[Program]]:
    """The process that moved the most bytes, and the busiest process names
    (2 x TOP_PROGRAMS: merging labels leaves enough), in one bounded pass."""
    by_process: HeavyHitters[_Talker] = HeavyHitters(TOP_TALKERS_KEPT, _Talker)
    by_name: HeavyHitters[_Talker] = HeavyHitters(TOP_TALKERS_KEPT, _Talker)
    for r in capture.records("bandwidth"):
        moved = r["rx_bytes"] + r["tx_bytes"]
        by_process.get(process_label(r["pid"], r["comm"])).weight += moved
        name = by_name.get(r["comm"])
        name.weight += moved
        name.rx_bytes += r["rx_bytes"]
        name.tx_bytes += r["tx_bytes"]
    top = by_process.top(1)
    programs = [Program(str(comm), t.rx_bytes, t.tx_bytes)
                for comm, t in by_name.top(2 * TOP_PROGRAMS) if t.weight]
    return (str(top[0][0]) if top and top[0][1].weight else None), programs


def lost_by_cause(meta: dict) -> dict[str, dict[str, int]]:
    """Per probe and cause, as meta.json says (its totals, checked by the
    reader, as cause `unknown` for captures without the breakdown or with
    one that does not add up)."""
    totals, causes = meta.get("lost_events", {}), meta.get("lost_events_by_cause")
    lost: dict[str, dict[str, int]] = {}
    for probe, total in totals.items():
        mine = causes.get(probe) if isinstance(causes, dict) else None
        known = ({c: mine[c] for c in LOST_CAUSES if c in mine} if isinstance(mine, dict)
                 else {})
        adds_up = all(type(n) is int and n >= 0 for n in known.values()) and sum(
            known.values()) == total
        lost[probe] = known if known and adds_up else {"unknown": total}
    return lost


def window_seconds(meta: dict) -> float:
    """A capture's length for one made before its summary had elapsed_s:
    its intervals, or, interrupted in the first, its start to its end."""
    seconds = float(meta.get("interval_s") or 0) * int(meta.get("intervals_done") or 0)
    started, ended = parse_time(meta.get("started_at")), parse_time(meta.get("ended_at"))
    if meta.get("interrupted") and started is not None and ended is not None:
        seconds = max(seconds, round(ended - started, 3))  # ms, as meta.json writes them
    return seconds


def read_snapshot(directory: Path) -> tuple[Headline, Snapshot]:
    """A capture's line in the index, and its numbers for the metrics."""
    capture = open_capture(directory)
    meta, n = capture.meta, numbers(capture)
    slowest = (f"{n.slowest_name} {human_ms(n.slowest_ms)}" if n.slowest_name is not None
               and n.slowest_ms is not None else None)
    probes = meta.get("probes", {})
    lost = meta.get("lost_events", {})
    seconds = n.elapsed_s or window_seconds(meta)
    top_talker, programs = talkers(capture)
    line = Headline(directory.name, meta["started_at"], meta.get("trigger", "manual"),
                    bool(meta.get("interrupted")), n.rx_bytes, n.tx_bytes, n.sessions,
                    n.lookups, n.failed_lookups, slowest, sum(lost.values()),
                    [name for name, p in probes.items() if p.get("status") == "failed"],
                    (directory / "report.html").exists(), top_talker, seconds,
                    n.failed_sessions, "ok" if meta.get("ended_at") else "unfinished")
    ended = meta.get("ended_at")
    numbers_now = Snapshot(n, parse_time(meta["started_at"]) or 0.0, parse_time(ended),
                           seconds, line.interrupted, lost_by_cause(meta),
                           {name: p.get("status") == "ok" for name, p in probes.items()
                            if p.get("status") in ("ok", "failed")}, programs)
    return line, numbers_now


def headline(directory: Path) -> Headline:
    return read_snapshot(directory)[0]


def runs(headlines: list[Headline]) -> Runs:
    """When runs last succeeded (start + window) and last started, per status,
    from the index (newest first)."""
    seen = Runs()
    for h in headlines:
        started = parse_time(h.started_at) or 0.0
        seen.last_run_s.setdefault(h.status, started)
        if h.status == "ok" and seen.last_success_s is None:
            seen.last_success_s = started + h.seconds
    return seen


def failed_headline(directory: Path, status: str = "failed", trigger: str = "?",
                    reason: str | None = None) -> Headline:
    """A run with no readable capture: it failed (the directory holds none)
    or was skipped (`directory` is the name it would have had)."""
    started = dt.datetime.strptime(directory.name[:16], NAME_TIME).replace(
        tzinfo=dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return Headline(directory.name, started, trigger, False, 0, 0, 0, 0, 0, None, 0, [], False,
                    status=status, reason=reason)


def _cached(root: Path) -> dict[str, Headline]:
    try:
        rows = jsonio.loads((root / CACHE).read_bytes())
        return {row["name"]: Headline(**row) for row in rows}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def update_index(root: Path, fresh: Headline | None = None) -> list[Headline]:
    """Rewrite ROOT/index.json and ROOT/index.html for the snapshots present
    and the newest runs that left none (failed or skipped, as the service
    noted them); `fresh` is a headline the caller already computed."""
    cache = _cached(root)
    if fresh:
        cache[fresh.name] = fresh
    headlines = []
    for directory in snapshot_dirs(root):
        cached = cache.get(directory.name)
        # a run the service saw fail may have left a meta.json: it stays failed
        if cached is None or not (cached.has_report or cached.status == "failed"):
            try:
                cache[directory.name] = headline(directory)
            except BadCapture:
                cache[directory.name] = failed_headline(directory)
        headlines.append(cache[directory.name])
    present = {h.name for h in headlines}
    notes = sorted((h for h in cache.values() if h.name not in present and h.reason),
                   key=lambda h: h.name, reverse=True)[:RUN_NOTES_KEPT]
    headlines = sorted(headlines + notes, key=lambda h: h.name, reverse=True)
    write_private(root / CACHE, jsonio.dumps([dataclasses.asdict(h) for h in headlines]))
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    write_private(root / INDEX, render_index(headlines, trend(_points(headlines)), str(root),
                                             now, outliers(headlines)).encode())
    return headlines


def _points(headlines: list[Headline]) -> list[tuple[float, dict[str, float]]]:
    """(start time, {series: value}) per readable snapshot, oldest first."""
    points = []
    for h in reversed(headlines):
        if h.status == "failed" or not h.seconds:
            continue
        started = parse_time(h.started_at) or 0.0
        points.append((started, {"received": 8 * h.rx_bytes / h.seconds,
                                 "sent": 8 * h.tx_bytes / h.seconds,
                                 "failed sessions": h.failed_sessions,
                                 "failed lookups": h.failed_lookups}))
    return points
