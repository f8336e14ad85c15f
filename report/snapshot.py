"""tcptop's snapshot view: per interval, the connections that moved the most
bytes (time, process, local, remote, received, sent). Each bandwidth line
already is one connection's interval; this keeps the top few of each
interval (a heap each), so memory is bounded by the intervals, not the lines."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nettrail.report.labels import endpoint, process_label, qualified
from nettrail.report.tally import TABLE_ROWS
from nettrail.units import printable

PER_INTERVAL = 10          # connections kept per interval, busiest first


@dataclass
class SnapshotRow:
    ts: float                # the interval's end
    host: str | None
    process: str
    local: str
    remote: str
    rx_bytes: int
    tx_bytes: int
    remote_is: str | None = None     # own.LOOPBACK, own.OWN (this host) or None: own.mark

    @property
    def label(self) -> str:
        return qualified(self.host, self.process)


@dataclass
class Snapshot:
    heaps: dict[tuple, list] = field(default_factory=dict)  # (host, interval): heap
    order: itertools.count = field(default_factory=itertools.count)
    row_count: int = 0       # connection-intervals seen (lines with bytes)
    kept: list[SnapshotRow] = field(default_factory=list)  # what the page shows

    def offer(self, host: str | None, block: list[Any], number_of: Callable[[Any], int]
              ) -> None:
        """One block of bandwidth lines: the busiest of each interval kept."""
        heaps, last, heap = self.heaps, None, []
        for r in block:
            moved = r.rx_bytes + r.tx_bytes
            if not moved:
                continue
            self.row_count += 1
            number = number_of(r)
            if number != last:  # a block holds runs of one interval: one lookup a run
                heap, last = heaps.setdefault((host, number), []), number
            if len(heap) < PER_INTERVAL:
                heapq.heappush(heap, (moved, next(self.order), _row(host, r)))
            elif moved > heap[0][0]:
                heapq.heapreplace(heap, (moved, next(self.order), _row(host, r)))

    def keep(self, limit: int = TABLE_ROWS) -> None:
        """In time order, each interval's busiest first; the first `limit`."""
        out = [row for _key, heap in sorted(self.heaps.items(), key=lambda kv: (
            kv[1][0][2].ts, str(kv[0][0])))
            for _moved, _n, row in sorted(heap, key=lambda e: (-e[0], e[1]))]
        self.kept = out[:limit]
        self.heaps.clear()


def _row(host: str | None, r: Any) -> SnapshotRow:
    return SnapshotRow(r.ts, host, process_label(r.pid, r.comm),
                       printable(endpoint(r.laddr, r.lport)),
                       printable(endpoint(r.raddr, r.rport)), r.rx_bytes, r.tx_bytes)
