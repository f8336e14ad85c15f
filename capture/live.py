"""What a capture shows while it runs: a live top-connections view on a
terminal, one line at start and end otherwise (cron), nothing with -q."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from nettrail.capture.window import Capture
from nettrail.units import human_bytes, printable

REFRESH_S = 1.0
TOP = 10


def _summary(capture: Capture) -> str:
    h = capture.headline
    state = (f"interrupted after {capture.intervals_done}/{capture.opts.count} intervals"
             if capture.interrupted else f"{capture.opts.count} intervals")
    lost = sum(capture.progress.lost.values())
    failed = [f"{n} failed" for n, p in capture.probes.items() if p.status.status == "failed"]
    parts = [f"nettrail: done ({state}): {human_bytes(h.rx_bytes)} in, "
             f"{human_bytes(h.tx_bytes)} out, {h.sessions} sessions, {h.lookups} lookups "
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


class LiveView(LineView):
    """Redraws the current interval's top connections once a second."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        super().__init__(out)
        self._next = 0.0

    def tick(self, capture: Capture) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + REFRESH_S
        h, progress = capture.headline, capture.progress
        lines = [f"nettrail  interval {progress.interval}/{capture.opts.count}  "
                 f"{progress.seconds_left:4.1f}s left  sessions {h.sessions}  lookups {h.lookups} "
                 f"({h.failed_lookups} failed)  lost {sum(progress.lost.values())}  "
                 f"Ctrl-C ends early",
                 f"{'PID':>7} {'COMM':16} {'LOCAL':>28} {'REMOTE':>28} {'RX':>10} {'TX':>10}"]
        bandwidth = capture.probes.get("bandwidth")
        conns = bandwidth.peek() if bandwidth and bandwidth.running else []
        conns.sort(key=lambda c: c.rx_bytes + c.tx_bytes, reverse=True)
        for c in conns[:TOP]:
            lines.append(f"{c.pid:>7} {printable(c.comm):16} {f'{c.laddr}:{c.lport}':>28} "
                         f"{f'{c.raddr}:{c.rport}':>28} {human_bytes(c.rx_bytes):>10} "
                         f"{human_bytes(c.tx_bytes):>10}")
        self.out.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
        self.out.flush()

    def end(self, capture: Capture) -> None:
        self.out.write("\x1b[H\x1b[J")
        super().end(capture)
