"""What a capture looked like, kept small enough to compare with another
(report/changes.py): per program, destination, served port and name, the
counts per time bin of the window (the interval-to-interval spread a
baseline is judged by) and the bounded sketches of latency, duration and
RTT. One pass over each log through the report's bounded reader; memory is
bounded by KEEP keys per table (report/bounded.py) and MAX_BINS bins."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nettrail.format.logs.sessions import FAILED_ENDS
from nettrail.report.bounded import HeavyHitters, LogSketch, keep_few
from nettrail.report.clock import window
from nettrail.report.labels import endpoint, group_label, side_of
from nettrail.report.reader import CaptureDir
from nettrail.report.summaries import AsSession, duration_ms, even_shares
from nettrail.units import printable

KEEP = 1_000          # keys per table (2 x this at most, HeavyHitters)
MAX_BINS = 60         # time bins per window: a longer window's intervals are merged
KEEP_GROUPS = 200     # containers and services remembered


@dataclass
class Activity:
    """One program, destination or served port."""
    bins: int
    weight: float = 0
    error: float = 0
    bytes_per_bin: list[int] = field(default_factory=list)
    sessions_per_bin: list[int] = field(default_factory=list)
    rx_bytes: int = 0
    tx_bytes: int = 0
    sessions: int = 0
    closed: int = 0
    retrans_sessions: int = 0        # closed sessions that retransmitted
    retrans_segs: int = 0
    lookups: int = 0
    failures: Counter = field(default_factory=Counter)   # refused, reset, timeout
    durations_ms: LogSketch = field(default_factory=LogSketch)
    # the path's round trip (min_rtt), not srtt: a bulk sender's srtt is its own
    # queue, which a loaded CPU stretches from 0.1 to 5 ms between like windows
    rtt_ms: LogSketch = field(default_factory=LogSketch)
    names: dict[str, None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bytes_per_bin = [0] * self.bins
        self.sessions_per_bin = [0] * self.bins


@dataclass
class NameActivity:
    weight: float = 0
    error: float = 0
    lookups: int = 0
    latency_ms: LogSketch = field(default_factory=LogSketch)
    errors: Counter = field(default_factory=Counter)


@dataclass
class Profile:
    path: str
    host: str
    started_at: str
    start: float
    seconds: float                 # the window's length
    bins: int
    programs: HeavyHitters[Activity]
    destinations: HeavyHitters[Activity]   # remote services we connected to
    served: HeavyHitters[Activity]         # our ports others connected to
    names: HeavyHitters[NameActivity]
    groups: dict[str, None] = field(default_factory=dict)   # containers and services
    lost_events: int = 0
    rx_per_bin: list[int] = field(default_factory=list)    # every byte (the charts)
    tx_per_bin: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def bin_s(self) -> float:
        return self.seconds / self.bins

    def bin_of(self, ts: float) -> int:
        return min(max(int((ts - self.start) / self.bin_s), 0), self.bins - 1)



def program_of(r: object) -> str:
    """A program across captures: its name and container or service, not its pid."""
    comm, group = printable(getattr(r, "comm")) or "?", group_label(r)
    return f"{comm} in {group}" if group else comm


def _service_of(r: object) -> tuple[str, str]:
    """("destinations", "addr:port") for our client sockets, ("served", "port N")
    for the server's."""
    side, _ = side_of(r)
    if side == "client":
        return "destinations", printable(endpoint(r.raddr, r.rport))
    return "served", f"port {r.lport}"


def _span(meta: dict) -> tuple[float, float]:
    """The intervals' span: the window less the probes' loading before them
    (seconds on a loaded or emulated machine, with nothing to see), where the
    headline says how long the intervals ran."""
    start, end = window(meta)
    elapsed = (meta.get("summary") or {}).get("elapsed_s")
    if isinstance(elapsed, (int, float)) and 0 < elapsed < end - start:
        return end - elapsed, end
    return start, end


def profile(capture: CaptureDir) -> Profile:
    meta = capture.meta
    start, end = _span(meta)
    done = int(meta.get("intervals_done") or 0)
    intervals = max(done + bool(meta.get("interrupted")), 1)
    seconds = max(end - start, 1e-3)
    bins = min(intervals, MAX_BINS)
    p = Profile(str(capture.path), printable(meta["host"]), str(meta["started_at"]), start,
                seconds, bins, HeavyHitters(KEEP, lambda: Activity(bins)),
                HeavyHitters(KEEP, lambda: Activity(bins)),
                HeavyHitters(KEEP, lambda: Activity(bins)), HeavyHitters(KEEP, NameActivity),
                lost_events=sum(meta.get("lost_events", {}).values()),
                rx_per_bin=[0] * bins, tx_per_bin=[0] * bins)
    addresses = _dns(p, capture)
    _bandwidth(p, capture, intervals)
    _sessions(p, capture, addresses)
    _summaries(p, capture, addresses)
    p.warnings = list(capture.warnings)
    return p


def _dns(p: Profile, capture: CaptureDir) -> dict[str, dict[str, None]]:
    """Names per address (to name destinations), a few per address."""
    addresses: dict[str, dict[str, None]] = {}
    for r in capture.records("dns"):
        if r.call_ts is not None or r.resolved_by in ("literal", "hosts"):
            continue  # a query a libc call sent: that call is the lookup
        program = p.programs.get(program_of(r))
        program.weight += 1
        program.lookups += 1
        _group(p, r)
        name = p.names.get(printable(r.name))
        name.weight += 1
        name.lookups += 1
        if r.pending:
            continue
        name.latency_ms.add(r.latency_ms)
        if not r.ok:
            name.errors[printable(r.error) if r.error else "failed"] += 1
        for address in r.addresses[:8]:
            if address in addresses or len(addresses) < 4 * KEEP:
                keep_few(addresses.setdefault(address, {}), printable(r.name), 3)
    return addresses


def _group(p: Profile, r: object) -> None:
    group = group_label(r)
    if group:
        keep_few(p.groups, group, KEEP_GROUPS)


def _bandwidth(p: Profile, capture: CaptureDir, intervals: int) -> None:
    for r in capture.records("bandwidth"):
        moved = r.rx_bytes + r.tx_bytes
        at = min(max(r.interval - 1, 0), intervals - 1) * p.bins // intervals
        p.rx_per_bin[at] += r.rx_bytes
        p.tx_per_bin[at] += r.tx_bytes
        table, key = _service_of(r)
        for stats in (p.programs.get(program_of(r)), getattr(p, table).get(key)):
            stats.weight += moved
            stats.bytes_per_bin[at] += moved
            stats.rx_bytes += r.rx_bytes
            stats.tx_bytes += r.tx_bytes
        _group(p, r)


def _named_service(p: Profile, r: object, addresses: dict[str, dict[str, None]]) -> Activity:
    """The destination or served port `r` counts in, with the names looked up
    for a destination's address (up to 3)."""
    table, key = _service_of(r)
    service = getattr(p, table).get(key)
    for name in addresses.get(r.raddr, ()) if table == "destinations" else ():  # type: ignore[attr-defined]
        keep_few(service.names, name, 3)
    return service


def _sessions(p: Profile, capture: CaptureDir,
              addresses: dict[str, dict[str, None]]) -> None:
    for r in capture.records("sessions"):
        service = _named_service(p, r, addresses)
        for stats in (p.programs.get(program_of(r)), service):
            stats.weight += 1
            stats.sessions += 1
            if r.opened_at is not None:
                stats.sessions_per_bin[p.bin_of(r.opened_at)] += 1
            if r.end in FAILED_ENDS:
                stats.failures[r.end] += 1
            if r.state != "closed":
                continue
            stats.closed += 1
            stats.retrans_sessions += bool(r.retrans_segs)
            stats.retrans_segs += r.retrans_segs or 0
            if r.duration_ms is not None and r.end not in FAILED_ENDS:
                stats.durations_ms.add(r.duration_ms)
            if r.min_rtt_us:
                stats.rtt_ms.add(r.min_rtt_us / 1000)
        _group(p, r)


def _summaries(p: Profile, capture: CaptureDir,
               addresses: dict[str, dict[str, None]]) -> None:
    """The sessions counted past the capture's line budget (report/summaries.py),
    as many as each summary says: those opened in the window spread evenly over
    the bins of its span, its duration sketch in the durations."""
    for block in capture.blocks("sessions", summary=True):
        for r in block:
            service = _named_service(p, AsSession(r), addresses)
            for stats in (p.programs.get(program_of(r)), service):
                _count_summary(p, stats, r)
            _group(p, r)


def _count_summary(p: Profile, stats: Activity, r: Any) -> None:
    n = r.sessions
    opened = n - min(r.before_window, n)
    stats.weight += n
    stats.sessions += n
    first, last = p.bin_of(r.first_ts), p.bin_of(r.last_ts)
    last = max(last, first)
    for at, share in zip(range(first, last + 1), even_shares(opened, last - first + 1)):
        stats.sessions_per_bin[at] += share
    if r.end in FAILED_ENDS:
        stats.failures[r.end] += n
    if r.state != "closed":
        return
    stats.closed += n
    stats.retrans_sessions += min(r.retrans_sessions, n)
    stats.retrans_segs += r.retrans_segs
    if r.end not in FAILED_ENDS:
        for bucket, times in enumerate(r.durations_log2_us):
            if times:
                stats.durations_ms.add(duration_ms(bucket), times)
