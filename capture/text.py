"""`nettrail top|life|dns`: a capture whose stdout is one of the seed tools'
text views (nettrail.textlines), line-buffered for pipes and grep; the
start and closing lines go to stderr as in any capture."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from nettrail.capture.live import LineView
from nettrail.capture.window import Capture
from nettrail.textlines import HEADERS, LINE_VIEWS, VIEWS, Filters, top_snapshot

CLEAR_SCREEN = "\x1b[H\x1b[2J"


class TextView(LineView):
    def __init__(self, view: str, filters: Filters, sort: str = "all", rows: int = 20,
                 clear: bool = False, out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr) -> None:
        super().__init__(err)
        self.view, self.probe, self.filters = view, VIEWS[view], filters
        self.sort, self.rows, self.clear = sort, rows, clear
        self.lines = out
        self._interval: list[dict] = []  # top: this interval's rows, shown at its end

    def begin(self, capture: Capture) -> None:
        window = ("until Ctrl-C" if capture.opts.open_ended
                  else f"{capture.opts.interval_s:g}s x {capture.opts.count}")
        probes = ", ".join(f"{n} {p.status.status}" for n, p in capture.probes.items())
        print(f"nettrail: capturing {window} into {capture.directory} ({probes})",
              file=self.out, flush=True)
        if self.view != "top":
            self._print([HEADERS[self.view]])

    def records(self, probe: str, records: list[dict]) -> None:
        if probe != self.probe:
            return
        matching = [r for r in records if self.filters.match(r)]
        if self.view == "top":
            self._interval += matching
            return
        line = LINE_VIEWS[self.view]
        self._print([text for r in matching if (text := line(r)) is not None])

    def interval_end(self, capture: Capture) -> None:
        if self.view != "top":
            return
        count = None if capture.opts.open_ended else capture.opts.count
        lines = top_snapshot(self._interval, time.time(), capture.progress.interval, count,
                             self.sort, self.rows)
        self._interval = []
        self._print([CLEAR_SCREEN + lines[0], *lines[1:]] if self.clear else ["", *lines])

    def _print(self, lines: list[str]) -> None:
        if lines:
            self.lines.write("\n".join(lines) + "\n")
            self.lines.flush()
