"""The bandwidth log: bytes per interval in total and per owner (the charts),
and per process and connection group (the tables)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nettrail.headline import Headline
from nettrail.report.bounded import HeavyHitters
from nettrail.report.clock import Clock
from nettrail.report.labels import owner_label, qualified
from nettrail.report.snapshot import Snapshot
from nettrail.report.tally import Tally

SERIES = 5                 # owners drawn in the bandwidth charts; the rest is "other"
KEEP_OWNERS = 2_000
FOLD_AT = 50_000  # distinct keys summed cheaply before they go to the bounded tables


@dataclass
class Interval:
    end: float
    seconds: float


@dataclass
class Series:
    label: str
    rx_bytes: list[int]
    tx_bytes: list[int]


@dataclass
class Bandwidth:
    rows: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    intervals: list[Interval] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)   # top owners, then "other"
    peak_bps: float = 0.0


@dataclass
class OwnerSeries:
    weight: float = 0
    error: float = 0
    per_interval: dict[int, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Who:
    """A process as the fold names it (attributes as on a record)."""
    pid: int | None
    comm: str
    container: str | None
    unit: str | None
    container_name: str | None  # the names, for labels.group_label
    pod: str | None
    pod_namespace: str | None


@dataclass(frozen=True)
class _Conn:
    pid: int | None
    comm: str
    container: str | None
    unit: str | None
    side: str | None
    family: str
    raddr: str
    lport: int
    rport: int
    container_name: str | None
    pod: str | None
    pod_namespace: str | None


# A bandwidth line's place on the page's intervals: its number, and (asked once
# per number) the interval it stands for
Slot = tuple[Callable[[Any], int], Callable[[Any], Interval]]
_NAMES = ("container_name", "pod", "pod_namespace")
_CONNECTION = operator.attrgetter("pid", "comm", "container", "unit", "side", "family",
                                  "raddr", "lport", "rport", *_NAMES)
_WHO = operator.attrgetter("pid", "comm", "container", "unit", *_NAMES)


def own_intervals(interval_s: float) -> Slot:
    """A single capture: its own intervals (the line's number and length)."""
    return operator.attrgetter("interval"), lambda r: Interval(r.ts, r.interval_s or interval_s)


def fleet_intervals(clock: Clock, step_s: float) -> Slot:
    """A fleet: captures start at different moments, so one grid of `step_s`
    (the longest interval of any capture) from the fleet's start; each line
    goes whole to the slot holding its interval's middle: totals stay exact,
    a rate is the slot's average."""
    def index(r: Any) -> int:
        return max(int((r.ts - (r.interval_s or step_s) / 2 - clock.start) / step_s), 0)

    def interval(r: Any) -> Interval:
        start = clock.start + index(r) * step_s
        end = min(start + step_s, max(clock.end, start + 1e-3))
        return Interval(end, end - start)
    return (lambda r: index(r) + 1), interval


def _rate(n_bytes: int, seconds: float) -> float:
    return 8 * n_bytes / seconds if seconds > 0 else 0.0


Streams = Iterable[tuple["str | None", Headline, Iterable[list[Any]], Slot]]
# A line of another log charted with TCP's (report/udp.py): host, its series'
# label, interval number, that interval, rx and tx bytes
ChartLine = tuple["str | None", str, int, Interval, int, int]


def aggregate_bandwidth(streams: Streams, tally: Tally, snapshot: Snapshot | None = None,
                        more: Iterable[ChartLine] = ()) -> Bandwidth:
    """Rows are first summed per raw connection and per (interval, process) in
    plain dicts (two dict operations per line); the labels, names and bounded
    tables see each distinct key once per fold. `snapshot` keeps each
    interval's busiest connections (report/snapshot.py). `more`: other
    protocols' bytes, in the charts only (each owner and protocol a series of
    its own)."""
    bw = Bandwidth()
    intervals: dict[int, Interval] = {}
    totals: dict[int, list[int]] = {}
    owners: HeavyHitters[OwnerSeries] = HeavyHitters(KEEP_OWNERS, OwnerSeries)
    for host, headline, blocks, (number_of, interval_of) in streams:
        sums = _Sums(tally, host, owners, intervals, totals)
        for block in blocks:
            headline.add("bandwidth", block)
            bw.rows += len(block)
            sums.add(block, number_of, interval_of)
            if snapshot is not None:
                snapshot.offer(host, block, number_of)
            if len(sums.conns) >= FOLD_AT or len(sums.per_interval) >= FOLD_AT:
                sums.fold()
        sums.fold()
    for host, label, number, interval, rx, tx in more:
        bw.rows += 1
        intervals.setdefault(number, interval)
        total = totals.setdefault(number, [0, 0])
        owner = owners.get(qualified(host, label))
        slot = owner.per_interval.setdefault(number, [0, 0])
        owner.weight += rx + tx
        for sums in (total, slot):
            sums[0] += rx
            sums[1] += tx
    order = sorted(intervals)
    bw.intervals = [intervals[n] for n in order]
    bw.rx_bytes = sum(t[0] for t in totals.values())
    bw.tx_bytes = sum(t[1] for t in totals.values())
    bw.peak_bps = max((_rate(sum(totals[n]), intervals[n].seconds) for n in order),
                      default=0.0)
    bw.series = _series(owners, order, totals)
    return bw


@dataclass
class _Sums:
    """One capture's rows summed in plain dicts until they are folded into
    the bounded tables."""
    tally: Tally
    host: str | None
    owners: HeavyHitters[OwnerSeries]
    intervals: dict[int, Interval]
    totals: dict[int, list[int]]
    conns: dict[tuple, list] = field(default_factory=dict)
    per_interval: dict[tuple, list[int]] = field(default_factory=dict)

    def add(self, block: list[Any], number_of: Callable[[Any], int],
            interval_of: Callable[[Any], Interval]) -> None:
        intervals, per_interval, conns = self.intervals, self.per_interval, self.conns
        # two dict operations per line: sums per (interval, process) and per connection
        for r in block:
            number = number_of(r)
            rx, tx = r.rx_bytes, r.tx_bytes
            key = (number, _WHO(r))
            slot = per_interval.get(key)
            if slot is None:  # the first line of a process in an interval (of this fold)
                per_interval[key] = [rx, tx]
                if number not in intervals:
                    intervals[number] = interval_of(r)
            else:
                slot[0] += rx
                slot[1] += tx
            key = _CONNECTION(r)
            conn = conns.get(key)
            if conn is None:
                self.tally.own.add(self.host, r.laddr)
                ts = r.ts
                conns[key] = [rx, tx, r.retrans_bytes or 0, r.srtt_us,
                              ts - intervals[number].seconds, ts, r.busy_us or 0,
                              r.rwnd_limited_us or 0,
                              (r.retrans_segs or 0) if r.sent_segs else 0, r.sent_segs or 0]
                continue
            conn[0] += rx
            conn[1] += tx
            if r.retrans_bytes:
                conn[2] += r.retrans_bytes
            if r.busy_us:  # the kernel's chrono stats, where the capture has them
                conn[6] += r.busy_us
                conn[7] += r.rwnd_limited_us or 0
            if r.sent_segs:  # segments, where the capture has them
                conn[8] += r.retrans_segs or 0
                conn[9] += r.sent_segs
            srtt = r.srtt_us
            if srtt is not None and (conn[3] is None or srtt > conn[3]):
                conn[3] = srtt
            if r.ts > conn[5]:
                conn[5] = r.ts

    def fold(self) -> None:
        """Move the sums into the bounded tables, and empty them."""
        tally, host = self.tally, self.host
        for (number, who), (rx, tx) in sorted(self.per_interval.items(), key=lambda kv: kv[0][0]):
            r = _Who(*who)
            total = self.totals.setdefault(number, [0, 0])
            total[0] += rx
            total[1] += tx
            seconds = self.intervals[number].seconds
            owner = self.owners.get(qualified(host, owner_label(r)))
            owner.weight += rx + tx
            slot = owner.per_interval.setdefault(number, [0, 0])
            slot[0] += rx
            slot[1] += tx
            proc = tally.process_of(host, r, math.inf)  # no record time: its interval's
            proc.interval_first_ts = min(proc.interval_first_ts,
                                         self.intervals[number].end - seconds)
            proc.rx_bytes += rx
            proc.tx_bytes += tx
            if proc.interval_now != number:
                proc.interval_now, proc.interval_bytes = number, 0
            proc.interval_bytes += rx + tx
            proc.peak_bps = max(proc.peak_bps, _rate(proc.interval_bytes, seconds))
        for key, (rx, tx, retrans, srtt, first, last, busy, rwnd, resent_segs,
                  sent_segs) in self.conns.items():
            group = tally.group(host, _Conn(*key), last)
            group.rx_bytes += rx
            group.tx_bytes += tx
            group.retrans_bytes += retrans
            group.busy_us += busy
            group.rwnd_limited_us += rwnd
            group.window_retrans_segs += resent_segs
            group.sent_segs += sent_segs
            group.interval_first_ts = min(group.interval_first_ts, first)
            group.interval_last_ts = max(group.interval_last_ts, last)
            if srtt is not None:
                group.max_srtt_us = max(group.max_srtt_us or 0, srtt)
        self.conns.clear()
        self.per_interval.clear()


def _series(owners: HeavyHitters[OwnerSeries], order: list[int],
            totals: dict[int, list[int]]) -> list[Series]:
    """Bytes per interval for the top owners, the rest as "other"."""
    top = owners.top(SERIES)
    series = [Series(str(label), [s.per_interval.get(n, [0, 0])[0] for n in order],
                     [s.per_interval.get(n, [0, 0])[1] for n in order]) for label, s in top]
    if len(owners) + owners.dropped > len(top):
        rest = Series(f"other ({len(owners) + owners.dropped - len(top):,})",
                      [totals[n][0] for n in order], [totals[n][1] for n in order])
        for s in series:
            rest.rx_bytes = [a - b for a, b in zip(rest.rx_bytes, s.rx_bytes)]
            rest.tx_bytes = [a - b for a, b in zip(rest.tx_bytes, s.tx_bytes)]
        series.append(rest)
    return series
