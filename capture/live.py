"""What a capture shows while it runs: a live top-connections view on a
terminal, one line at start and end otherwise (cron), nothing with -q.

The live view fits the terminal (re-measured every frame), shows rates in
bit/s and the wall clock, and leaves its last frame on screen at the end,
with the closing line below it."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
from typing import TextIO

from nettrail.capture.window import Capture
from nettrail.units import bytes_rate, human_bytes, printable

REFRESH_S = 1.0
HEADER_LINES = 2
MIN_COLUMNS, MIN_LINES = 40, 5
RATE_WIDTH = 11


def _elapsed(capture: Capture) -> float:
    return capture.intervals_done * capture.opts.interval_s + (
        capture.opts.interval_s - capture.progress.seconds_left
        if capture.progress.interval > capture.intervals_done else 0.0)


def _summary(capture: Capture) -> str:
    h = capture.headline
    state = (f"interrupted after {capture.intervals_done}/{capture.opts.count} intervals"
             if capture.interrupted else f"{capture.opts.count} intervals")
    seconds = capture.intervals_done * capture.opts.interval_s or _elapsed(capture)
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


def frame_lines(capture: Capture, conns: list, columns: int, lines: int,
                now: float) -> list[str]:
    """The view as lines no wider than `columns`, at most `lines` of them:
    a status line, a header and the busiest connections of the interval."""
    h, progress = capture.headline, capture.progress
    clock = dt.datetime.fromtimestamp(now).astimezone().strftime("%H:%M:%S %Z")
    status = (f"nettrail {clock}  interval {progress.interval}/{capture.opts.count}  "
              f"{progress.seconds_left:4.1f}s left  sessions {h.sessions}  lookups {h.lookups} "
              f"({h.failed_lookups} failed)  lost {sum(progress.lost.values())}  "
              f"Ctrl-C ends early")
    seconds = max(capture.opts.interval_s - progress.seconds_left, 0.1)
    rates = 2 * (RATE_WIDTH + 1)
    fixed = 8 + 16 + rates
    show_local = columns - fixed >= 2 * 22
    address = max((columns - fixed) // (2 if show_local else 1) - 1, 8)
    head = (f"{'PID':>7} {'COMM':15} " + (f"{'LOCAL':{address}} " if show_local else "")
            + f"{'REMOTE':{address}} {'RX':>{RATE_WIDTH}} {'TX':>{RATE_WIDTH}}")
    out = [_fit(status, columns), _fit(head, columns)]
    for c in conns[:max(lines - HEADER_LINES - 1, 0)]:
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

    def __init__(self, out: TextIO = sys.stderr) -> None:
        super().__init__(out)
        self._next = 0.0
        self._drawn = 0  # lines of the frame on screen, to redraw over

    def tick(self, capture: Capture) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + REFRESH_S
        size = shutil.get_terminal_size()
        bandwidth = capture.probes.get("bandwidth")
        conns = bandwidth.peek() if bandwidth and bandwidth.running else []
        conns.sort(key=lambda c: c.rx_bytes + c.tx_bytes, reverse=True)
        lines = frame_lines(capture, conns, max(size.columns, MIN_COLUMNS),
                            max(size.lines, MIN_LINES), time.time())
        self._draw(lines)

    def _draw(self, lines: list[str]) -> None:
        """Over the previous frame: up to its first line, clear to the end."""
        up = f"\x1b[{self._drawn}F" if self._drawn else "\r"
        self.out.write(up + "\x1b[J" + "\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def rendering(self, capture: Capture) -> None:
        self.out.write("nettrail: rendering report…\n")
        self.out.flush()
        self._drawn = 0  # the frame above stays as it is

