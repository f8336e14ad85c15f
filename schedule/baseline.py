"""`nettrail report DIR --baseline auto`: which earlier snapshot of a
schedule directory (DIR's parent) the capture is compared with. The most
recent earlier snapshot of the same host without failures, at the same
time of day (within TIME_OF_DAY_S), on the same day of the week where the
history has one; the answer says which and why.

The siblings are other processes' directories: each is opened once,
without following a symbolic link, and taken only if it belongs to the
capture's owner (or root) and nobody else can write it; the one chosen is
handed over open, never looked up again."""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from nettrail.errors import BadCapture, NettrailError, UsageError
from nettrail.format.meta import parse_time
from nettrail.report.build import Baseline
from nettrail.report.reader import open_capture
from nettrail.schedule.snapshots import snapshot_dirs
from nettrail.units import printable

TIME_OF_DAY_S = 30 * 60
MAX_CANDIDATES = 5_000  # snapshots looked at (newest first); retention keeps fewer


OPEN_SIBLING = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Candidate:
    path: Path
    host: str
    start: float
    failure: str | None       # why it is no baseline, or None
    dir_fd: int = -1          # open while it may be chosen (see _Best)


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


def _candidate(path: Path, dir_fd: int) -> Candidate | None:
    """The capture open at `dir_fd` (the caller's: closed by the caller)."""
    try:
        capture = open_capture(path, dir_fd=dir_fd)
    except NettrailError:
        return None
    try:
        meta = capture.meta
        return Candidate(path, meta["host"], parse_time(meta["started_at"]) or 0.0,
                         _failure(meta))
    finally:
        capture.close()


def _trusted(fd: int, owner: int) -> bool:
    """Made by the capture's owner or root, and writable by nobody else."""
    st = os.fstat(fd)
    return st.st_uid in (owner, 0) and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _sibling(root_fd: int, path: Path, owner: int) -> Candidate | None:
    """A sibling snapshot, opened once (no symbolic link followed), if trusted;
    its directory stays open in `dir_fd`."""
    try:
        fd = os.open(path.name, OPEN_SIBLING, dir_fd=root_fd)
    except OSError:
        return None
    c = _candidate(path, fd) if _trusted(fd, owner) else None
    if c is None:
        os.close(fd)
        return None
    c.dir_fd = fd
    return c


class _Best:
    """The most recent fitting candidate so far, kept open; the others closed."""

    def __init__(self) -> None:
        self.c: Candidate | None = None

    def offer(self, c: Candidate) -> bool:
        """Kept if newer than the best so far; true if kept."""
        if self.c is not None and self.c.start >= c.start:
            return False
        self.close()
        self.c = c
        return True

    def close(self) -> None:
        if self.c is not None:
            os.close(self.c.dir_fd)
            self.c = None


def _seconds_apart_in_day(a: dt.datetime, b: dt.datetime) -> float:
    apart = abs((a.hour * 3600 + a.minute * 60 + a.second)
                - (b.hour * 3600 + b.minute * 60 + b.second))
    return min(apart, 86_400 - apart)


def pick(directory: Path) -> Baseline:
    """The baseline for the snapshot at `directory`, why it was chosen, and
    its directory open (the caller closes `dir_fd`)."""
    try:  # the user's own argument: a link to a capture is fine
        my_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        my_fd = -1
    me = _candidate(directory, my_fd) if my_fd >= 0 else None
    owner = os.fstat(my_fd).st_uid if my_fd >= 0 else -1
    if my_fd >= 0:
        os.close(my_fd)
    if me is None:
        raise BadCapture(f"{directory} is not a readable capture",
                         "pass a snapshot directory of a schedule ROOT")
    root = directory.parent
    try:
        paths = snapshot_dirs(root)[:MAX_CANDIDATES]
        root_fd = os.open(root, OPEN_SIBLING)
    except OSError as exc:
        raise UsageError(f"--baseline auto: cannot list {root} ({exc.strerror})",
                         "pass the baseline capture directory instead of auto") from None
    mine = dt.datetime.fromtimestamp(me.start, dt.timezone.utc)
    same_day, same_time = _Best(), _Best()
    try:
        for path in paths:
            if path.name == directory.name:
                continue
            c = _sibling(root_fd, path, owner)
            if c is None:
                continue
            t = dt.datetime.fromtimestamp(c.start, dt.timezone.utc)
            fits = (c.host == me.host and c.start < me.start and not c.failure
                    and _seconds_apart_in_day(t, mine) <= TIME_OF_DAY_S)
            kept = fits and (same_day.offer(c) if t.weekday() == mine.weekday()
                             else same_time.offer(c))
            if not kept:
                os.close(c.dir_fd)
    finally:
        os.close(root_fd)
    return _answer(me, mine, same_day, same_time, root)


def _answer(me: Candidate, mine: dt.datetime, same_day: _Best, same_time: _Best,
            root: Path) -> Baseline:
    """The same weekday's if any, else the same time of day's (the other closed)."""
    host = printable(me.host)
    window = f"±{TIME_OF_DAY_S // 60} min"
    if same_day.c is not None:
        c = same_day.c
        same_time.close()
        t = dt.datetime.fromtimestamp(c.start, dt.timezone.utc)
        return Baseline(c.path, f"the most recent earlier snapshot of {host} without failures "
                        f"at the same time of day ({window}) and day of the week ({t:%A}): "
                        f"{c.path.name}", c.dir_fd)
    if same_time.c is not None:
        c = same_time.c
        return Baseline(c.path, f"the most recent earlier snapshot of {host} without failures "
                        f"at the same time of day ({window}); none on a {mine:%A} yet: "
                        f"{c.path.name}", c.dir_fd)
    raise UsageError(f"--baseline auto: no earlier snapshot of {host} without failures at "
                     f"this time of day ({window}) in {root}",
                     "pass a baseline capture directory instead of auto")
