"""What a capture shows while it runs: a live top-connections view on a
terminal, one line at start and end otherwise (cron), nothing with -q.

The live view fits the terminal (re-measured every frame), shows rates in
bit/s and the wall clock, and leaves its last frame on screen at the end,
with the closing line below it."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import select
import shutil
import signal
import sys
import termios
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from nettrail.capture.window import Capture
from nettrail.units import bytes_rate, human_bytes, printable

REFRESH_S = 1.0
HEADER_LINES = 2
MIN_COLUMNS, MIN_LINES = 40, 5
RATE_WIDTH = 11
KEYS_HINT = "p processes  s sort"


def _summary(capture: Capture) -> str:
    h = capture.headline
    of = "" if capture.opts.open_ended else f"/{capture.opts.count}"
    state = (f"{'stopped' if capture.opts.open_ended else 'interrupted'} after "
             f"{capture.intervals_done}{of} intervals"
             if capture.interrupted else f"{capture.opts.count} intervals")
    seconds = h.elapsed_s or capture.intervals_done * capture.opts.interval_s
    lost = sum(capture.progress.lost.values())
    failed = [f"{n} failed" for n, p in capture.probes.items() if p.status.status == "failed"]
    parts = [f"nettrail: done ({state}): {human_bytes(h.rx_bytes)} in "
             f"({bytes_rate(h.rx_bytes, seconds)} average), {human_bytes(h.tx_bytes)} out "
             f"({bytes_rate(h.tx_bytes, seconds)}), {h.sessions} sessions, {h.lookups} lookups "
             f"({h.failed_lookups} failed), {lost} lost events", *failed]
    if capture.report_path:
        parts.append(f"report {capture.report_path}")
    if capture.report_error:
        parts.append(f"report not written: {capture.report_error}")
    return "; ".join(parts)


class QuietView:
    def begin(self, capture: Capture) -> None:
        pass

    def tick(self, capture: Capture) -> None:
        pass

    def records(self, probe: str, records: list[dict]) -> None:
        pass

    def interval_end(self, capture: Capture) -> None:
        pass

    def rendering(self, capture: Capture) -> None:
        pass

    def end(self, capture: Capture) -> None:
        pass


class LineView(QuietView):
    """One line at start, one at end, no escape codes."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out

    def begin(self, capture: Capture) -> None:
        probes = ", ".join(f"{n} {p.status.status}" for n, p in capture.probes.items())
        print(f"nettrail: capturing {capture.opts.interval_s:g}s x {capture.opts.count} into "
              f"{capture.directory} ({probes})", file=self.out, flush=True)

    def end(self, capture: Capture) -> None:
        print(_summary(capture), file=self.out, flush=True)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def interval_so_far(capture: Capture) -> float:
    return max(capture.opts.interval_s - capture.progress.seconds_left, 0.1)


def status_line(capture: Capture, columns: int, now: float, hint: str = "") -> str:
    """The first line, within `columns`: where the window is, lost events
    and how to stop always (down to MIN_COLUMNS), then the clock, then the
    counts and the `hint`, as far as they fit."""
    h, progress = capture.headline, capture.progress
    when = dt.datetime.fromtimestamp(now).astimezone()
    of = "" if capture.opts.open_ended else f"/{capture.opts.count}"
    tail = [f"lost {sum(progress.lost.values())}", "Ctrl-C ends early"]
    optional = [f"sessions {h.sessions}", f"lookups {h.lookups} ({h.failed_lookups} failed)",
                *([hint] if hint else [])]
    heads = ([f"nettrail {when:%H:%M:%S %Z}", f"{progress.interval}{of} "
              f"{progress.seconds_left:.1f}s left"],
             [f"{when:%H:%M:%S}", f"{progress.interval}{of} {progress.seconds_left:.1f}s"],
             [f"{progress.interval}{of} {progress.seconds_left:.1f}s"])
    head = next((h for h in heads if len("  ".join(h + tail)) <= columns), heads[-1])
    while optional and len("  ".join(head + optional + tail)) > columns:
        optional.pop()
    return _fit("  ".join(head + optional + tail), columns)


SORTS = {"all": lambda c: c.rx_bytes + c.tx_bytes, "rx": lambda c: c.rx_bytes,
         "tx": lambda c: c.tx_bytes}  # the live view's `s` key cycles through them


@dataclass
class ProcessRow:
    """One process's connections of the interval, summed (the `p` key)."""

    pid: int
    comm: str
    conns: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0


def per_process(conns: list) -> list[ProcessRow]:
    rows: dict[tuple[int, str], ProcessRow] = {}
    for c in conns:
        row = rows.setdefault((c.pid, c.comm), ProcessRow(c.pid, c.comm))
        row.conns += 1
        row.rx_bytes += c.rx_bytes
        row.tx_bytes += c.tx_bytes
    return list(rows.values())


def frame_lines(capture: Capture, conns: list, columns: int, lines: int,
                now: float, seconds: float | None = None, by_process: bool = False,
                sort: str = "all", hint: str = "") -> list[str]:
    """The view as lines no wider than `columns`, at most `lines` of them:
    a status line, a header and the busiest connections (or processes), by
    `sort`, their rates over `seconds` (default: the current interval so far)."""
    status = status_line(capture, columns, now, hint)
    if seconds is None:
        seconds = interval_so_far(capture)
    rows = sorted(per_process(conns) if by_process else conns, key=SORTS[sort], reverse=True)
    rows = rows[:max(lines - HEADER_LINES - 1, 0)]
    rates = 2 * (RATE_WIDTH + 1)
    marks = {name: ("*" if name.lower() == sort or sort == "all" else " ") for name in ("RX", "TX")}
    rate_head = f"{marks['RX'] + 'RX':>{RATE_WIDTH}} {marks['TX'] + 'TX':>{RATE_WIDTH}}"
    if by_process:
        head = f"{'PID':>7} {'COMM':15} {'CONNS':>7} {rate_head}"
        body = [f"{r.pid:>7} {_fit(printable(r.comm), 15):15} {r.conns:>7} "
                f"{bytes_rate(r.rx_bytes, seconds):>{RATE_WIDTH}} "
                f"{bytes_rate(r.tx_bytes, seconds):>{RATE_WIDTH}}" for r in rows]
        return [_fit(line, columns) for line in (status, head, *body)]
    fixed = 8 + 16 + rates
    show_local = columns - fixed >= 2 * 22
    address = max((columns - fixed) // (2 if show_local else 1) - 1, 8)
    head = (f"{'PID':>7} {'COMM':15} " + (f"{'LOCAL':{address}} " if show_local else "")
            + f"{'REMOTE':{address}} {rate_head}")
    out = [_fit(status, columns), _fit(head, columns)]
    for c in rows:
        local = _fit(f"{c.laddr}:{c.lport}", address)
        remote = _fit(f"{c.raddr}:{c.rport}", address)
        out.append(_fit(f"{c.pid:>7} {_fit(printable(c.comm), 15):15} "
                        + (f"{local:{address}} " if show_local else "")
                        + f"{remote:{address}} {bytes_rate(c.rx_bytes, seconds):>{RATE_WIDTH}} "
                        f"{bytes_rate(c.tx_bytes, seconds):>{RATE_WIDTH}}", columns))
    return out


class LiveView(LineView):
    """Redraws the current interval's busiest connections once a second, in
    place; the last frame stays."""

    def __init__(self, out: TextIO = sys.stderr, keys: int | None = None) -> None:
        super().__init__(out)
        self.keys = keys  # a terminal's fd in cbreak mode (keys()), or None
        self.by_process, self.sort = False, "all"
        self._next = 0.0
        self._drawn = 0  # lines of the frame on screen, to redraw over
        # the last connections that moved bytes, and over how long: shown
        # until others do (a new interval starts with nothing counted yet,
        # and a starved sender moves nothing for a while)
        self._rows: list = []
        self._rows_s = 0.1

    def _read_keys(self) -> bool:
        """p: connections or processes; s: sort by all, rx, tx. True if one came."""
        if self.keys is None or not select.select([self.keys], [], [], 0)[0]:
            return False
        for key in os.read(self.keys, 64).decode(errors="replace").lower():
            if key == "p":
                self.by_process = not self.by_process
            elif key == "s":
                order = list(SORTS)
                self.sort = order[(order.index(self.sort) + 1) % len(order)]
        return True

    def tick(self, capture: Capture) -> None:
        now = time.monotonic()
        if now < self._next and not self._read_keys():
            return
        self._next = now + REFRESH_S
        bandwidth = capture.probes.get("bandwidth")
        conns = bandwidth.peek() if bandwidth and bandwidth.running else []
        moving = [c for c in conns if c.rx_bytes or c.tx_bytes]
        if moving:
            self._rows, self._rows_s = moving, interval_so_far(capture)
        if not foreground(self.out):
            return  # in the background (its wrapper gone): keep off the terminal
        size = shutil.get_terminal_size()
        self._draw(frame_lines(capture, self._rows, max(size.columns, MIN_COLUMNS),
                               max(size.lines, MIN_LINES), time.time(), self._rows_s,
                               self.by_process, self.sort, KEYS_HINT if self.keys else ""))

    def _draw(self, lines: list[str]) -> None:
        """Over the previous frame, in one write: up to its first line, clear
        to the end."""
        up = f"\x1b[{self._drawn}F" if self._drawn else "\r"
        self.out.write(up + "\x1b[J" + "\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def rendering(self, capture: Capture) -> None:
        if foreground(self.out):
            self.out.write("nettrail: rendering report…\n")
            self.out.flush()
        self._drawn = 0  # the frame above stays as it is

    def end(self, capture: Capture) -> None:
        if foreground(self.out):
            super().end(capture)


@contextlib.contextmanager
def terminal_of_our_own(out: TextIO) -> Iterator[None]:
    """Under a wrapper (flock, timeout) Ctrl-C reaches the wrapper too: it
    dies, and the shell prints its prompt while the capture still renders
    over it. In a process group of our own in the foreground, Ctrl-C reaches
    nettrail alone and the wrapper waits for it; the terminal goes back to
    the wrapper's group at the end. Ctrl-Z is ignored meanwhile: the shell
    could not resume a group it does not know."""
    try:
        fd, group = out.fileno(), os.getpgrp()
        owned = os.tcgetpgrp(fd) == group and group != os.getpid()
    except (OSError, ValueError, io.UnsupportedOperation):
        owned = False
    if not owned:  # not a terminal, in the background, or the shell's job leader
        yield
        return
    tstp = signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    os.setpgid(0, 0)
    _give_terminal(fd, os.getpid())
    try:
        yield
    finally:
        _give_terminal(fd, group)
        signal.signal(signal.SIGTSTP, tstp)


@contextlib.contextmanager
def keys(stdin: TextIO) -> Iterator[int | None]:
    """The terminal's keys one by one, unechoed, while the live view runs
    (cbreak: Ctrl-C still interrupts); None if stdin is no terminal."""
    try:
        fd = stdin.fileno()
        saved = termios.tcgetattr(fd)
        ours = os.tcgetpgrp(fd) == os.getpgrp()  # from the background: SIGTTOU
    except (OSError, ValueError, io.UnsupportedOperation, termios.error):
        ours = False
    if not ours:
        yield None
        return
    tty.setcbreak(fd)
    try:
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _give_terminal(fd: int, group: int) -> None:
    """tcsetpgrp from a background group: SIGTTOU would stop us, ignore it."""
    ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, group)
    except OSError:  # the wrapper is gone: the shell takes its terminal back itself
        pass
    finally:
        signal.signal(signal.SIGTTOU, ttou)


def foreground(out: TextIO) -> bool:
    """Whether this process's group owns the terminal `out` writes to."""
    try:
        return os.tcgetpgrp(out.fileno()) == os.getpgrp()
    except (OSError, ValueError, io.UnsupportedOperation):
        return True  # not a terminal (a test's buffer): nothing to disturb

