"""The process and connection tables: everything counted per process and per
connection group, across logs and, in a fleet report, across hosts (`host`
None: a single capture). Bounded: HeavyHitters tables (report/bounded.py)."""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nettrail.format.logs.sessions import FAILED_ENDS
from nettrail.report.bounded import HeavyHitters, LogSketch, keep_few
from nettrail.report.clock import Clock
from nettrail.report.labels import (LABEL_CACHE, endpoint, group_label, process_label,
                                    qualified, side_of)
from nettrail.report.names import NamesOf
from nettrail.report.own import OwnAddresses
from nettrail.units import printable

TABLE_ROWS = 500   # rows a table carries (every one sortable and filterable)
KEEP_GROUPS = 5_000


@dataclass
class ProcessStats:
    weight: float = 0
    error: float = 0
    group: str | None = None
    rx_bytes: int = 0
    tx_bytes: int = 0
    peak_bps: float = 0.0            # busiest interval, both directions
    sessions: int = 0
    failed_sessions: int = 0
    lookups: int = 0
    first_ts: float = math.inf       # its first record's own time (session, lookup)
    interval_first_ts: float = math.inf  # the start of its first interval with bytes
    before_window: bool = False      # had a session opened before the window
    interval_now: int = 0            # the interval being summed for peak_bps
    interval_bytes: int = 0


@dataclass
class ProcessRow:
    host: str | None
    process: str
    group: str | None
    rx_bytes: int
    tx_bytes: int
    peak_bps: float
    sessions: int
    failed_sessions: int
    lookups: int
    first_ts: float | None
    new: bool
    first_per_interval: bool = False  # first_ts is an interval's start (bytes per interval)

    @property
    def label(self) -> str:
        return qualified(self.host, self.process)


@dataclass
class GroupStats:
    weight: float = 0
    error: float = 0
    family: str = "ipv4"
    guessed: bool = False
    sessions: int = 0
    open: int = 0
    ends: Counter = field(default_factory=Counter)
    rx_bytes: int = 0                # in the window (bandwidth)
    tx_bytes: int = 0
    retrans_bytes: int = 0           # in the window (bandwidth)
    session_rx_bytes: int = 0        # over the sessions' lives
    session_tx_bytes: int = 0
    retrans_segs: int = 0            # over the sessions' lives
    retrans_sessions: int = 0        # sessions that retransmitted at all
    max_srtt_us: int | None = None
    hostnames: dict[str, None] = field(default_factory=dict)
    first_ts: float = math.inf       # sessions' own times: opened (or logged), ended
    last_ts: float = -math.inf
    interval_first_ts: float = math.inf   # bandwidth: its intervals' edges
    interval_last_ts: float = -math.inf
    before_window: int = 0           # sessions opened before the window
    busy_us: int = 0                 # in the window (bandwidth, where the kernel said)
    rwnd_limited_us: int = 0
    syn_retrans_segs: int = 0        # over the sessions' handshakes
    max_connect_us: int | None = None
    durations: LogSketch | None = None  # closed sessions' duration_ms (made on the first)
    rtts: LogSketch | None = None       # sessions' path RTT, µs (made on the first)
    window_retrans_segs: int = 0     # in the window (bandwidth), where the capture has them
    sent_segs: int = 0


@dataclass
class ConnectionGroup:
    """Connections of one process with one remote endpoint on one service
    port (client: the remote's port; server: ours)."""
    host: str | None
    process: str
    group: str | None
    side: str
    guessed: bool
    remote: str          # client: address:port; server: the clients' address
    port: int
    hostnames: list[str]
    sessions: int
    open: int
    ends: dict[str, int]
    failed: int
    rx_bytes: int
    tx_bytes: int
    retrans_bytes: int
    session_rx_bytes: int
    session_tx_bytes: int
    retrans_segs: int
    retrans_sessions: int
    max_srtt_us: int | None
    first_ts: float | None
    last_ts: float | None
    approximate: bool
    busy_us: int = 0
    rwnd_limited_us: int = 0
    syn_retrans_segs: int = 0
    max_connect_us: int | None = None
    duration_p50_ms: float | None = None
    duration_p95_ms: float | None = None
    duration_max_ms: float | None = None
    closed: int = 0                  # sessions with a duration (closed in the window)
    rtt_p50_us: float | None = None
    window_retrans_segs: int = 0
    sent_segs: int = 0
    before_window: int = 0           # of its sessions, opened before the window
    times_per_interval: bool = False  # no session times: first/last are interval edges
    remote_is: str | None = None     # own.LOOPBACK, own.OWN (this host) or None: own.mark
    durations: LogSketch | None = None  # its closed sessions' durations (GroupStats')
    duration_bins: list[int] = field(default_factory=list)  # the histogram's: histogram.mark

    @property
    def label(self) -> str:
        return qualified(self.host, self.process)

    @property
    def resent_share(self) -> float | None:
        """Of the bytes sent in the window, the share that was sent again."""
        sent = self.tx_bytes + self.retrans_bytes
        return self.retrans_bytes / sent if sent else None


class Tally:
    def __init__(self, clock: Clock, names_of: NamesOf,
                 starts: dict[str | None, float]) -> None:
        self.clock = clock
        self.names_of = names_of
        self.starts = starts  # each host's window start: processes seen later are new
        self.processes: HeavyHitters[ProcessStats] = HeavyHitters(KEEP_GROUPS, ProcessStats)
        self.groups: HeavyHitters[GroupStats] = HeavyHitters(KEEP_GROUPS, GroupStats)
        self.guessed_sides = 0
        self.own = OwnAddresses()  # the sockets' local addresses (sessions, bandwidth)

    def process(self, host: str | None, label: str, group: str | None, first_ts: float
                ) -> ProcessStats:
        stats = self.processes.get((host, label))
        stats.weight += 1
        stats.group = stats.group or group
        stats.first_ts = min(stats.first_ts, first_ts)
        return stats

    def process_of(self, host: str | None, r: Any, first_ts: float) -> ProcessStats:
        return self.process(host, process_label(r.pid, r.comm), group_label(r), first_ts)

    def group(self, host: str | None, r: Any, connected: float | None) -> GroupStats:
        side, guessed = side_of(r)
        self.guessed_sides += guessed
        # the service's port only: the cache is keyed by what the key is made
        # of (a client's own ephemeral port would make each session a miss)
        stats = self.groups.get(_group_key(host, r.pid, r.comm, group_label(r), side, r.raddr,
                                           r.rport if side == "client" else r.lport))
        stats.weight += 1
        stats.family, stats.guessed = r.family, guessed
        for name in self.names_of(r, host, connected):
            keep_few(stats.hostnames, name, 3)
        return stats

    def process_rows(self, limit: int | None = TABLE_ROWS) -> list[ProcessRow]:
        rows = []
        for (host, label), s in self.processes.top(limit, key=lambda s: (  # type: ignore[misc]
                -(s.rx_bytes + s.tx_bytes), -s.sessions, -s.lookups)):
            newcomer_after = self.starts.get(host, self.clock.start) + max(
                self.clock.bucket_s, 1.0)
            earliest = min(s.first_ts, s.interval_first_ts)
            first = earliest if earliest != math.inf else None
            rows.append(ProcessRow(host, str(label), s.group, s.rx_bytes, s.tx_bytes,
                                   s.peak_bps, s.sessions,
                                   s.failed_sessions, s.lookups, first,
                                   first is not None and first > newcomer_after
                                   and not s.before_window,
                                   s.interval_first_ts < s.first_ts))
        return rows

    def group_rows(self) -> list[ConnectionGroup]:
        rows = []
        for (host, process, group, side, remote, port), s in self.groups.top(
                TABLE_ROWS, key=lambda s: (-(s.rx_bytes + s.tx_bytes + s.session_rx_bytes
                                             + s.session_tx_bytes), -s.sessions)):
            failed = sum(s.ends[e] for e in FAILED_ENDS)
            # sessions carry their own times; bandwidth only its intervals' edges
            per_interval = s.first_ts == math.inf
            first, last = ((s.interval_first_ts, s.interval_last_ts) if per_interval
                           else (s.first_ts, s.last_ts))
            rows.append(ConnectionGroup(
                host, process, group, side, s.guessed, remote, port, list(s.hostnames), s.sessions,
                s.open, dict(s.ends), failed, s.rx_bytes, s.tx_bytes, s.retrans_bytes,
                s.session_rx_bytes, s.session_tx_bytes, s.retrans_segs, s.retrans_sessions,
                s.max_srtt_us, first if first != math.inf else None,
                last if last != -math.inf else None, bool(s.error),
                s.busy_us, s.rwnd_limited_us, s.syn_retrans_segs, s.max_connect_us,
                *_durations(s.durations), _quantile(s.rtts, 0.5), s.window_retrans_segs,
                s.sent_segs, s.before_window, per_interval and first != math.inf,
                durations=s.durations))
        return rows


def _quantile(sketch: LogSketch | None, q: float) -> float | None:
    return sketch.quantile(q) if sketch else None


def _durations(sketch: LogSketch | None) -> tuple:
    """p50, p95, max and count of a group's session durations."""
    return (_quantile(sketch, 0.5), _quantile(sketch, 0.95), _quantile(sketch, 1.0),
            sketch.count if sketch else 0)


@functools.lru_cache(maxsize=LABEL_CACHE)
def _group_key(host: str | None, pid: int | None, comm: str, group: str | None, side: str,
               raddr: str, service_port: int) -> tuple:
    """(host, process, service, side, remote, service port): a client's remote
    is the server's endpoint; a server's, the client's address."""
    remote = endpoint(raddr, service_port) if side == "client" else raddr
    return (host, process_label(pid, comm), group, side, printable(remote), service_port)
