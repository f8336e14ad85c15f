"""Stage 1 of the report: turn a capture into the numbers the page shows.

Dataclasses only, no HTML. Logs are streamed and summed as they are read;
memory is bounded whatever they hold (report/bounded.py and the limits below;
docs/report.md states the bounds). DNS is read first so that addresses in the
other logs can be named by the lookups that returned them.

Every time is a Unix timestamp; every label from the logs went through
`printable` (no control characters or bidi overrides)."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from nettrail.logformat import SIDES
from nettrail.report.bounded import HeavyHitters, LogSketch
from nettrail.report.conversations import (KEEP_CONVERSATIONS, Conversations, End, Matcher,
                                           plain_address)
from nettrail.report.reader import CaptureDir
from nettrail.units import bytes_rate, human_bytes, human_ms, printable

# What the page carries (tables: every row up to these, sortable and filterable)
TABLE_ROWS = 500
SERIES = 5                 # owners drawn in the bandwidth charts; the rest is "other"
BUCKETS = 120              # at most this many time buckets across the window
# What aggregation keeps (bounded.py's HeavyHitters capacities)
KEEP_NAMES = 2_000
KEEP_GROUPS = 5_000
KEEP_OWNERS = 2_000
KEEP_RESOLUTIONS = 100_000  # (owner, address) pairs remembered for naming
LINK_PIDS = 4_096           # processes with libc calls/wire queries waiting to be paired
LINK_DEPTH = 32             # per process
# What stands out
SLOW_LOOKUP_MS = 100.0
HIGH_RTT_US = 100_000
BURST_PER_SECOND = 20
NAMED_WITHIN_S = 600.0     # a lookup names an address for connections this soon after
FAILED_ENDS = ("refused", "reset", "timeout")
# Linux's default net.ipv4.ip_local_port_range: where clients' ports come from
EPHEMERAL_PORTS = range(32768, 61000)

# One log of each capture: (its host in a fleet report, else None; its records)
Streams = Iterable[tuple[str | None, Iterable[dict]]]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..1)."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- who ------------------------------------------------------------------------

LABEL_CACHE = 1 << 16  # labels are made once per distinct process, not per line


@functools.lru_cache(maxsize=LABEL_CACHE)
def process_label(pid: int | None, comm: str) -> str:
    return f"{printable(comm) or '?'} ({pid})" if pid is not None else "unknown process"


@functools.lru_cache(maxsize=LABEL_CACHE)
def _group_label(container: str | None, unit: str | None) -> str | None:
    if container:
        return f"container {printable(container[:12])}"
    if unit and unit.endswith(".service"):
        return printable(unit)
    return None


def group_label(r: dict) -> str | None:
    """The container or systemd service a record's process runs in, if known
    (login sessions and user slices are no service: None)."""
    return _group_label(r.get("container"), r.get("unit"))


def owner_label(r: dict) -> str:
    """What the bandwidth charts and top talkers name: the service or
    container, else the process."""
    return group_label(r) or process_label(r["pid"], r["comm"])


def naming_owner(r: dict, host: str | None) -> tuple[str | None, str, object]:
    """Whose lookups may name a connection's address: the same container, else
    the same process, on the same host."""
    return (host, "container", r["container"]) if r.get("container") else (host, "pid",
                                                                             r["pid"])


def qualified(host: str | None, label: str) -> str:
    """A process or service as a fleet report names it: `web-3:curl (812)`."""
    return f"{host}:{label}" if host is not None else label


def side_of(r: dict) -> tuple[str, bool]:
    """(client|server, guessed). The capture's own flag where it has one;
    else the side whose port is ephemeral is the client."""
    return _side(r.get("side"), r["lport"], r["rport"])


@functools.lru_cache(maxsize=LABEL_CACHE)
def _side(side: str | None, lport: int, rport: int) -> tuple[str, bool]:
    if side in SIDES:
        return side, False
    local_ephemeral = lport in EPHEMERAL_PORTS
    if local_ephemeral != (rport in EPHEMERAL_PORTS):
        return ("client" if local_ephemeral else "server"), True
    return ("client" if lport > rport else "server"), True


# -- the clock ------------------------------------------------------------------

@dataclass
class Clock:
    """The window on the wall clock, and the zone the page shows times in
    (the renderer's local zone; its offset at the window's start)."""
    start: float
    end: float
    tz: dt.tzinfo
    bucket_s: float

    @property
    def zone(self) -> str:
        local = dt.datetime.fromtimestamp(self.start, self.tz)
        offset = local.strftime("%z")
        if local.tzname() == "UTC" and offset == "+0000":
            return "UTC"
        return f"{local.tzname()}, UTC{offset[:3]}:{offset[3:]}"

    def bucket(self, ts: float) -> int:
        # a hair's allowance: 0.3 / 0.1 is 2.9999999999999996 in floats
        return min(max(int((ts - self.start) / self.bucket_s + 1e-9), 0), self.buckets - 1)

    @property
    def buckets(self) -> int:
        return max(1, math.ceil((self.end - self.start) / self.bucket_s - 1e-9))

    def bucket_start(self, index: int) -> float:
        return self.start + index * self.bucket_s


NICE_BUCKETS_S = (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def _parse_iso(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _window(meta: dict) -> tuple[float, float]:
    start = _parse_iso(meta.get("started_at")) or 0.0
    planned = float(meta.get("interval_s") or 1) * int(meta.get("count") or 1)
    return start, _parse_iso(meta.get("ended_at")) or start + planned


def make_clock(metas: list[dict]) -> Clock:
    """One clock for every capture: the union of their windows."""
    windows = [_window(meta) for meta in metas]
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    length = max(end - start, 0.001)
    bucket_s = next((b for b in NICE_BUCKETS_S if length / b <= BUCKETS), 3600 * 24)
    return Clock(start, start + length, dt.datetime.now().astimezone().tzinfo, bucket_s)


# -- DNS ------------------------------------------------------------------------

@dataclass
class Lookup:
    """One lookup as people think of it: a libc call with the wire queries it
    caused, or a wire query no libc call asked for."""
    ts: float
    name: str
    source: str
    latency_ms: float
    ok: bool
    pending: bool
    error: str | None
    host: str | None       # fleet reports: the capture's host
    process: str
    group: str | None
    owner: tuple[str | None, str, object]
    pid: int | None
    addresses: list[str]
    resolved_by: str | None
    wire: list[str] = field(default_factory=list)  # "A 10.0.0.2:53 NXDOMAIN 3.1 ms"

    @property
    def label(self) -> str:
        return qualified(self.host, self.process)

    @property
    def outcome(self) -> str:
        if self.pending:
            return "no answer at window end"
        return self.error or ("answered" if self.ok else "failed")

    def caused(self, wire: dict) -> bool:
        """Whether a wire query was made for this libc call: same process,
        the name (or the name plus a search suffix), within the call."""
        asked = wire["name"].lower().rstrip(".")
        name = self.name.lower().rstrip(".")
        return (wire["pid"] == self.pid and (asked == name or asked.startswith(name + "."))
                and self.ts - 0.001 <= wire["ts"] <= self.ts + self.latency_ms / 1000 + 0.001)


def _lookup(r: dict, host: str | None) -> Lookup:
    resolved_by = r.get("resolved_by")
    if resolved_by is None and _is_address(r["name"]):
        resolved_by = "literal"  # older captures did not say; a literal names nothing
    return Lookup(r["ts"], printable(r["name"]), r["source"], r["latency_ms"], r["ok"],
                  r["pending"], printable(r["error"]) if r["error"] else None,
                  host, process_label(r["pid"], r["comm"]), group_label(r),
                  naming_owner(r, host), r["pid"],
                  [printable(a) for a in r["addresses"][:8]], resolved_by)


def _wire_note(r: dict) -> str:
    parts = [r.get("qtype") or "?", printable(r.get("server") or "?"),
             "pending" if r["pending"] else printable(r["error"] or "ok"),
             human_ms(r["latency_ms"])]
    return " ".join(parts)


class LookupLinker:
    """Pairs libc calls with their wire queries, in bounded memory, whichever
    comes first in the log: each process keeps its last LINK_DEPTH libc
    calls and its unpaired wire queries; a wire query pushed out unpaired
    is a lookup of its own. One linker per capture: pids are per host."""

    def __init__(self, host: str | None) -> None:
        self.host = host
        self.calls: dict[object, deque[Lookup]] = {}
        self.waiting: dict[object, deque[dict]] = {}
        self.linked = 0  # wire queries paired with their libc call

    def feed(self, r: dict) -> Iterator[Lookup]:
        pid = r["pid"]
        if r["source"] != "wire":
            call = _lookup(r, self.host)
            waiting = self.waiting.get(pid, ())
            for wire in [w for w in waiting if call.caused(w)]:
                waiting.remove(wire)
                self._link(call, wire)
            self._remember(self.calls, pid, call)
            yield call
            return
        call = next((c for c in reversed(self.calls.get(pid, ())) if c.caused(r)), None)
        if call:
            self._link(call, r)
            return
        pushed_out = self._remember(self.waiting, pid, r)
        yield from (self._alone(w) for w in pushed_out)

    def _link(self, call: Lookup, wire: dict) -> None:
        if len(call.wire) < LINK_DEPTH:
            call.wire.append(_wire_note(wire))
        self.linked += 1

    def _remember(self, table: dict, pid: object, item: object) -> list:
        """Add item to pid's queue; return what fell out (queues and pids bounded)."""
        fell: list = []
        queue = table.pop(pid, None)
        if queue is None:
            queue = deque()
            if len(table) >= LINK_PIDS:
                fell.extend(table.pop(next(iter(table))))
        table[pid] = queue  # most recently used last
        if len(queue) == LINK_DEPTH:
            fell.append(queue.popleft())
        queue.append(item)
        return fell if table is self.waiting else []

    def flush(self) -> Iterator[Lookup]:
        for queue in self.waiting.values():
            yield from (self._alone(w) for w in queue)
        self.waiting.clear()

    def _alone(self, r: dict) -> Lookup:
        lookup = _lookup(r, self.host)
        lookup.wire.append(_wire_note(r))
        return lookup


@dataclass
class NameStats:
    weight: float = 0
    error: float = 0
    failures: int = 0
    pending: int = 0
    slow: int = 0
    latency: LogSketch = field(default_factory=LogSketch)
    errors: Counter = field(default_factory=Counter)
    processes: dict[str, None] = field(default_factory=dict)
    addresses: dict[str, None] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)


@dataclass
class HostStats:
    """One hostname's lookups (rows of the hostname table)."""
    name: str
    count: int
    approximate: bool
    failures: int
    pending: int
    slow: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    processes: list[str]
    errors: dict[str, int]
    addresses: list[str]
    sources: list[str]


@dataclass
class DnsBucket:
    lookups: int = 0
    failed: int = 0
    slow: int = 0
    max_ms: float | None = None


@dataclass
class Dns:
    count: int = 0
    failed: int = 0
    pending: int = 0
    slow: int = 0
    literal: int = 0              # IP literals: no lookup happened
    from_hosts: int = 0           # answered from the hosts file
    wire_linked: int = 0          # wire queries shown with the libc call that made them
    hosts: list[HostStats] = field(default_factory=list)
    host_count: int = 0
    hosts_exact: bool = True
    problems: list[Lookup] = field(default_factory=list)  # failed, pending, slow; newest first
    problem_count: int = 0
    buckets: list[DnsBucket] = field(default_factory=list)
    latency: LogSketch = field(default_factory=LogSketch)


class Resolutions:
    """Which names each owner resolved to each address, and when (the newest
    few per pair; the oldest pairs are forgotten beyond KEEP_RESOLUTIONS)."""

    def __init__(self) -> None:
        self.pairs: dict[tuple, list[tuple[float, str]]] = {}

    def add(self, lookup: Lookup) -> None:
        if lookup.resolved_by in ("literal", "hosts") or not lookup.ok:
            return
        for address in lookup.addresses:
            key = (lookup.owner, address)
            entries = self.pairs.pop(key, [])
            if len(self.pairs) >= KEEP_RESOLUTIONS:
                del self.pairs[next(iter(self.pairs))]
            entries = [e for e in entries if e[1] != lookup.name][-2:] + [(lookup.ts,
                                                                           lookup.name)]
            self.pairs[key] = entries

    def names(self, r: dict, host: str | None, connected: float | None) -> list[str]:
        """Names the record's owner resolved to its remote address shortly
        before `connected` (None: opened before the window, nothing known)."""
        if connected is None:
            return []
        entries = self.pairs.get((naming_owner(r, host), r["raddr"]), ())
        return [name for ts, name in entries
                if connected - NAMED_WITHIN_S <= ts <= connected + 0.001]


def aggregate_dns(streams: Streams, tally: Tally) -> Dns:
    clock = tally.clock
    dns = Dns(buckets=[DnsBucket() for _ in range(clock.buckets)])
    names: HeavyHitters[NameStats] = HeavyHitters(KEEP_NAMES, NameStats)
    problems: deque[Lookup] = deque(maxlen=TABLE_ROWS)
    for host, records in streams:
        linker = LookupLinker(host)
        for r in records:
            for lookup in linker.feed(r):
                _count_lookup(dns, names, tally, problems, lookup)
        for lookup in linker.flush():
            _count_lookup(dns, names, tally, problems, lookup)
        dns.wire_linked += linker.linked
    dns.problems = sorted(problems, key=lambda lk: -lk.ts)
    dns.hosts = [_host_stats(name, s) for name, s in names.top(
        TABLE_ROWS, key=lambda s: (-(s.latency.quantile(0.95) or 0), -s.weight))]
    dns.host_count = len(names) + names.dropped
    dns.hosts_exact = names.exact
    return dns


def _count_lookup(dns: Dns, names: HeavyHitters[NameStats], tally: Tally,
                  problems: deque[Lookup], lk: Lookup) -> None:
    tally.resolutions.add(lk)
    tally.process(lk.host, lk.process, lk.group, lk.ts).lookups += 1
    if lk.resolved_by == "literal":
        dns.literal += 1
        return
    if lk.resolved_by == "hosts":
        dns.from_hosts += 1
        return
    dns.count += 1
    failed = not lk.ok and not lk.pending
    slow = not lk.pending and lk.latency_ms >= SLOW_LOOKUP_MS
    dns.failed += failed
    dns.pending += lk.pending
    dns.slow += slow
    totals = tally.host(lk.host)
    totals.lookups += 1
    totals.failed_lookups += failed
    bucket = dns.buckets[tally.clock.bucket(lk.ts)]
    bucket.lookups += 1
    bucket.failed += failed or lk.pending
    bucket.slow += slow
    if not lk.pending:
        dns.latency.add(lk.latency_ms)
        bucket.max_ms = max(bucket.max_ms or 0.0, lk.latency_ms)
    stats = names.get(lk.name)
    stats.weight += 1
    stats.failures += failed
    stats.pending += lk.pending
    stats.slow += slow
    if not lk.pending:
        stats.latency.add(lk.latency_ms)
    if failed and len(stats.errors) < 8 or lk.error in stats.errors:
        stats.errors[lk.error or "failed"] += 1
    _keep_few(stats.processes, lk.label, 6)
    for address in lk.addresses:
        _keep_few(stats.addresses, address, 5)
    stats.sources.add(lk.source)
    if failed or lk.pending or slow:
        problems.append(lk)
        dns.problem_count += 1


def _keep_few(seen: dict[str, None], item: str, limit: int) -> None:
    """Remember up to `limit` distinct items (one more says "and more")."""
    if len(seen) < limit:
        seen[item] = None


def _host_stats(name: object, s: NameStats) -> HostStats:
    return HostStats(str(name), int(s.weight - s.error), bool(s.error), s.failures,
                     s.pending, s.slow, s.latency.quantile(0.5), s.latency.quantile(0.95),
                     s.latency.max if s.latency.count else None, list(s.processes),
                     dict(s.errors), list(s.addresses), sorted(s.sources))


# -- processes and connections (bandwidth and sessions) ---------------------------

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
    first_ts: float = math.inf
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
    session_rx_bytes: int = 0        # over the sessions' lives
    session_tx_bytes: int = 0
    retrans: int = 0                 # sessions with retransmitted segments
    max_srtt_us: int | None = None
    hostnames: dict[str, None] = field(default_factory=dict)
    first_ts: float = math.inf
    last_ts: float = -math.inf


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
    session_rx_bytes: int
    session_tx_bytes: int
    retrans: int
    max_srtt_us: int | None
    first_ts: float | None
    last_ts: float | None
    approximate: bool

    @property
    def label(self) -> str:
        return qualified(self.host, self.process)


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


@dataclass
class HostTotals:
    """What one capture of a fleet report saw, counted as the page counts it."""
    start: float | None = None  # its window's start: processes seen later are new
    rx_bytes: int = 0
    tx_bytes: int = 0
    sessions: int = 0
    failed_sessions: int = 0
    lookups: int = 0           # DNS lookups (no literals or hosts-file answers)
    failed_lookups: int = 0


class Tally:
    """Everything counted per process and per connection group, across logs
    and, in a fleet report, across hosts (`host` None: a single capture)."""

    def __init__(self, clock: Clock, resolutions: Resolutions) -> None:
        self.clock = clock
        self.resolutions = resolutions
        self.processes: HeavyHitters[ProcessStats] = HeavyHitters(KEEP_GROUPS, ProcessStats)
        self.groups: HeavyHitters[GroupStats] = HeavyHitters(KEEP_GROUPS, GroupStats)
        self.guessed_sides = 0
        self.hosts: dict[str | None, HostTotals] = {}

    def host(self, host: str | None) -> HostTotals:
        totals = self.hosts.get(host)
        if totals is None:
            totals = self.hosts[host] = HostTotals()
        return totals

    def process(self, host: str | None, label: str, group: str | None, first_ts: float
                ) -> ProcessStats:
        stats = self.processes.get((host, label))
        stats.weight += 1
        stats.group = stats.group or group
        stats.first_ts = min(stats.first_ts, first_ts)
        return stats

    def process_of(self, host: str | None, r: dict, first_ts: float) -> ProcessStats:
        return self.process(host, process_label(r["pid"], r["comm"]), group_label(r), first_ts)

    def group(self, host: str | None, r: dict, connected: float | None) -> GroupStats:
        side, guessed = side_of(r)
        self.guessed_sides += guessed
        stats = self.groups.get(_group_key(host, r["pid"], r["comm"], group_label(r), side,
                                           r["raddr"], r["lport"], r["rport"]))
        stats.weight += 1
        stats.family, stats.guessed = r["family"], guessed
        for name in self.resolutions.names(r, host, connected):
            _keep_few(stats.hostnames, name, 3)
        return stats

    def process_rows(self) -> list[ProcessRow]:
        rows = []
        for (host, label), s in self.processes.top(TABLE_ROWS, key=lambda s: (  # type: ignore[misc]
                -(s.rx_bytes + s.tx_bytes), -s.sessions, -s.lookups)):
            start = self.host(host).start
            newcomer_after = (self.clock.start if start is None else start) + max(
                self.clock.bucket_s, 1.0)
            first = s.first_ts if s.first_ts != math.inf else None
            rows.append(ProcessRow(host, str(label), s.group, s.rx_bytes, s.tx_bytes,
                                   s.peak_bps, s.sessions,
                                   s.failed_sessions, s.lookups, first,
                                   first is not None and first > newcomer_after
                                   and not s.before_window))
        return rows

    def group_rows(self) -> list[ConnectionGroup]:
        rows = []
        for (host, process, group, side, remote, port), s in self.groups.top(
                TABLE_ROWS, key=lambda s: (-(s.rx_bytes + s.tx_bytes + s.session_rx_bytes
                                             + s.session_tx_bytes), -s.sessions)):
            failed = sum(s.ends[e] for e in FAILED_ENDS)
            rows.append(ConnectionGroup(
                host, process, group, side, s.guessed, remote, port, list(s.hostnames), s.sessions,
                s.open, dict(s.ends), failed, s.rx_bytes, s.tx_bytes, s.session_rx_bytes,
                s.session_tx_bytes, s.retrans, s.max_srtt_us,
                s.first_ts if s.first_ts != math.inf else None,
                s.last_ts if s.last_ts != -math.inf else None, bool(s.error)))
        return rows


@functools.lru_cache(maxsize=LABEL_CACHE)
def _group_key(host: str | None, pid: int | None, comm: str, group: str | None, side: str,
               raddr: str, lport: int, rport: int) -> tuple:
    """(host, process, service, side, remote, service port): a client's remote
    is the server's endpoint; a server's, the client's address."""
    remote = endpoint(raddr, rport) if side == "client" else raddr
    return (host, process_label(pid, comm), group, side, printable(remote),
            rport if side == "client" else lport)


def _rate(n_bytes: int, seconds: float) -> float:
    return 8 * n_bytes / seconds if seconds > 0 else 0.0


CONNECTION_KEY = ("pid", "comm", "container", "unit", "side", "family", "raddr", "lport",
                  "rport")
FOLD_AT = 50_000  # distinct keys summed cheaply before they go to the bounded tables

# A bandwidth line's place on the page's intervals: (number, end, seconds)
Slot = Callable[[dict], tuple[int, float, float]]


def own_intervals(interval_s: float) -> Slot:
    """A single capture: its own intervals (the line's number and length)."""
    return lambda r: (r["interval"], r["ts"], r["interval_s"] or interval_s)


def fleet_intervals(clock: Clock, step_s: float) -> Slot:
    """A fleet: captures start at different moments, so one grid of `step_s`
    (the longest interval of any capture) from the fleet's start; each line
    goes whole to the slot holding its interval's middle: totals stay exact,
    a rate is the slot's average."""
    def slot(r: dict) -> tuple[int, float, float]:
        middle = r["ts"] - (r["interval_s"] or step_s) / 2
        index = max(int((middle - clock.start) / step_s), 0)
        start = clock.start + index * step_s
        end = min(start + step_s, max(clock.end, start + 1e-3))
        return index + 1, end, end - start
    return slot


def aggregate_bandwidth(streams: Iterable[tuple[str | None, Iterable[dict], Slot]],
                        tally: Tally) -> Bandwidth:
    """Rows are first summed per raw connection and per (interval, process) in
    plain dicts (a few dict operations per line); the labels, names and
    bounded tables see each distinct key once per fold."""
    bw = Bandwidth()
    intervals: dict[int, Interval] = {}
    totals: dict[int, list[int]] = {}
    owners: HeavyHitters[OwnerSeries] = HeavyHitters(KEEP_OWNERS, OwnerSeries)
    for host, records, slot_of in streams:
        conns: dict[tuple, list] = {}
        per_interval: dict[tuple, list[int]] = {}
        host_totals = tally.host(host)
        for r in records:
            rx, tx, ts = r["rx_bytes"], r["tx_bytes"], r["ts"]
            number, end, seconds = slot_of(r)
            bw.rows += 1
            if number not in intervals:
                intervals[number] = Interval(end, seconds)
                totals[number] = [0, 0]
            total = totals[number]
            total[0] += rx
            total[1] += tx
            host_totals.rx_bytes += rx
            host_totals.tx_bytes += tx
            who = (number, r["pid"], r["comm"], r["container"], r["unit"])
            slot = per_interval.get(who)
            if slot is None:
                slot = per_interval[who] = [0, 0]
            slot[0] += rx
            slot[1] += tx
            key = (r["pid"], r["comm"], r["container"], r["unit"], r["side"], r["family"],
                   r["raddr"], r["lport"], r["rport"])
            conn = conns.get(key)
            if conn is None:
                conn = conns[key] = [0, 0, None, ts - intervals[number].seconds, ts]
            conn[0] += rx
            conn[1] += tx
            if r["srtt_us"] is not None and (conn[2] is None or r["srtt_us"] > conn[2]):
                conn[2] = r["srtt_us"]
            conn[4] = max(conn[4], ts)
            if len(conns) >= FOLD_AT or len(per_interval) >= FOLD_AT:
                _fold(tally, host, owners, intervals, conns, per_interval)
        _fold(tally, host, owners, intervals, conns, per_interval)
    order = sorted(intervals)
    bw.intervals = [intervals[n] for n in order]
    bw.rx_bytes = sum(t[0] for t in totals.values())
    bw.tx_bytes = sum(t[1] for t in totals.values())
    bw.peak_bps = max((_rate(sum(totals[n]), intervals[n].seconds) for n in order),
                      default=0.0)
    bw.series = _series(owners, order, totals)
    return bw


def _fold(tally: Tally, host: str | None, owners: HeavyHitters[OwnerSeries],
          intervals: dict[int, Interval], conns: dict[tuple, list],
          per_interval: dict[tuple, list[int]]) -> None:
    """Move the sums into the bounded tables, and empty them."""
    for (number, pid, comm, container, unit), (rx, tx) in sorted(
            per_interval.items(), key=lambda kv: kv[0][0]):
        r = {"pid": pid, "comm": comm, "container": container, "unit": unit}
        seconds = intervals[number].seconds
        owner = owners.get(qualified(host, owner_label(r)))
        owner.weight += rx + tx
        slot = owner.per_interval.setdefault(number, [0, 0])
        slot[0] += rx
        slot[1] += tx
        proc = tally.process_of(host, r, intervals[number].end - seconds)
        proc.rx_bytes += rx
        proc.tx_bytes += tx
        if proc.interval_now != number:
            proc.interval_now, proc.interval_bytes = number, 0
        proc.interval_bytes += rx + tx
        proc.peak_bps = max(proc.peak_bps, _rate(proc.interval_bytes, seconds))
    for key, (rx, tx, srtt, first, last) in conns.items():
        group = tally.group(host, dict(zip(CONNECTION_KEY, key)), last)
        group.rx_bytes += rx
        group.tx_bytes += tx
        group.first_ts = min(group.first_ts, first)
        group.last_ts = max(group.last_ts, last)
        if srtt is not None:
            group.max_srtt_us = max(group.max_srtt_us or 0, srtt)
    conns.clear()
    per_interval.clear()


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


# -- sessions -------------------------------------------------------------------

@dataclass
class Session:
    """One session worth a look on its own: it failed, retransmitted or had a
    high RTT."""
    ts: float
    host: str | None
    process: str
    local: str
    remote: str
    side: str
    guessed: bool
    hostnames: list[str]
    tx_bytes: int
    rx_bytes: int
    duration_ms: float | None
    state: str
    end: str | None
    retrans_segs: int | None
    srtt_us: int | None
    opened_at: float | None

    @property
    def label(self) -> str:
        return qualified(self.host, self.process)

    @property
    def problems(self) -> list[str]:
        out = [self.end] if self.end in FAILED_ENDS else []
        if self.retrans_segs:
            out.append("retransmissions")
        if self.srtt_us is not None and self.srtt_us >= HIGH_RTT_US:
            out.append("high RTT")
        return out


@dataclass
class SessionBucket:
    opened: int = 0
    closed: int = 0
    failed: int = 0        # refused, reset, timed out
    retrans: int = 0
    groups: Counter = field(default_factory=Counter)  # who opened sessions (few kept)


@dataclass
class Burst:
    ts: float
    seconds: float
    opened: int
    per_second: float
    by: str


@dataclass
class Sessions:
    count: int = 0
    closed: int = 0
    open: int = 0
    before_window: int = 0
    ends: Counter = field(default_factory=Counter)
    failed: int = 0
    retrans: int = 0
    high_rtt: int = 0
    tx_bytes: int = 0
    rx_bytes: int = 0
    durations: LogSketch = field(default_factory=LogSketch)
    buckets: list[SessionBucket] = field(default_factory=list)
    odd: list[Session] = field(default_factory=list)   # newest first, at most TABLE_ROWS
    odd_count: int = 0
    bursts: list[Burst] = field(default_factory=list)


def aggregate_sessions(streams: Streams, tally: Tally, matcher: Matcher | None = None
                       ) -> Sessions:
    """Matcher: a fleet report's, fed every session to pair connections' ends."""
    s = Sessions(buckets=[SessionBucket() for _ in range(tally.clock.buckets)])
    odd: deque[Session] = deque(maxlen=TABLE_ROWS)
    for host, records in streams:
        totals = tally.host(host)
        for r in records:
            failed = _count_session_record(s, tally, host, r, odd)
            totals.sessions += 1
            totals.failed_sessions += failed
            if matcher:
                matcher.feed(r, _end(host or "", r))
    s.odd = sorted(odd, key=lambda x: -x.ts)
    s.bursts = _bursts(s.buckets, tally.clock)
    return s


def _count_session_record(s: Sessions, tally: Tally, host: str | None, r: dict,
                          odd: deque[Session]) -> bool:
    """Count one session everywhere it shows; whether it failed."""
    closed = r["state"] == "closed"
    opened_at, end = r["opened_at"], r.get("end")
    failed = end in FAILED_ENDS
    s.count += 1
    s.closed += closed
    s.open += not closed
    s.before_window += opened_at is None
    s.ends[end or r["state"]] += 1
    s.failed += failed
    s.retrans += bool(r.get("retrans_segs"))
    s.high_rtt += (r.get("srtt_us") or 0) >= HIGH_RTT_US
    s.tx_bytes += r["tx_bytes"]
    s.rx_bytes += r["rx_bytes"]
    if closed and r["duration_ms"] is not None:
        s.durations.add(r["duration_ms"])
    proc = tally.process_of(host, r, opened_at if opened_at is not None else r["ts"])
    proc.sessions += 1
    proc.failed_sessions += failed
    proc.before_window |= opened_at is None
    group = tally.group(host, r, opened_at)
    _count_session(group, r, opened_at)
    _bucket_session(s.buckets, tally.clock, r, qualified(host, owner_label(r)), failed)
    session = _session(host, r, tally.resolutions.names(r, host, opened_at))
    if session.problems:
        odd.append(session)
        s.odd_count += 1
    return failed


def _end(host: str, r: dict) -> End:
    side, guessed = side_of(r)
    opened_at = r["opened_at"]
    return End(host, process_label(r["pid"], r["comm"]), group_label(r), side, guessed,
               printable(endpoint(plain_address(r["laddr"]), r["lport"])),
               opened_at if opened_at is not None else -math.inf, r["ts"], r["tx_bytes"],
               r["rx_bytes"], r.get("retrans_segs"), r.get("srtt_us"), r["state"] == "open")


def _count_session(group: GroupStats, r: dict, opened_at: float | None) -> None:
    group.sessions += 1
    group.open += r["state"] == "open"
    group.ends[r.get("end") or r["state"]] += 1
    group.session_rx_bytes += r["rx_bytes"]
    group.session_tx_bytes += r["tx_bytes"]
    group.retrans += bool(r.get("retrans_segs"))
    if r.get("srtt_us") is not None:
        group.max_srtt_us = max(group.max_srtt_us or 0, r["srtt_us"])
    group.first_ts = min(group.first_ts, opened_at if opened_at is not None else r["ts"])
    group.last_ts = max(group.last_ts, r["ts"])


def _bucket_session(buckets: list[SessionBucket], clock: Clock, r: dict, who: str,
                    failed: bool) -> None:
    if r["opened_at"] is not None:
        opened = buckets[clock.bucket(r["opened_at"])]
        opened.opened += 1
        if who in opened.groups or len(opened.groups) < 16:
            opened.groups[who] += 1
    if r["state"] == "closed":
        closed = buckets[clock.bucket(r["ts"])]
        closed.closed += 1
        closed.failed += failed
        closed.retrans += bool(r.get("retrans_segs"))


def _session(host: str | None, r: dict, hostnames: list[str]) -> Session:
    side, guessed = side_of(r)
    return Session(r["ts"], host, process_label(r["pid"], r["comm"]), endpoint(r["laddr"], r["lport"]),
                   endpoint(r["raddr"], r["rport"]), side, guessed, hostnames,
                   r["tx_bytes"], r["rx_bytes"], r["duration_ms"], r["state"], r.get("end"),
                   r.get("retrans_segs"), r.get("srtt_us"), r["opened_at"])


def _bursts(buckets: list[SessionBucket], clock: Clock) -> list[Burst]:
    """Runs of buckets where at least BURST_PER_SECOND sessions opened, at that
    rate or more, and at least three times the usual (median) bucket."""
    usual = percentile(sorted(b.opened for b in buckets), 0.5)
    found: list[Burst] = []
    who: Counter = Counter()
    for index, b in enumerate(buckets):
        per_second = b.opened / clock.bucket_s
        if not (min(b.opened, per_second) >= BURST_PER_SECOND and b.opened >= 3 * usual):
            continue
        last = found[-1] if found else None
        if last and abs(last.ts + last.seconds - clock.bucket_start(index)) < 1e-6:
            last.seconds += clock.bucket_s  # the burst goes on
            last.opened += b.opened
            who.update(b.groups)
        else:
            who = Counter(b.groups)
            found.append(Burst(clock.bucket_start(index), clock.bucket_s, b.opened, 0.0, ""))
        found[-1].per_second = found[-1].opened / found[-1].seconds
        found[-1].by = ", ".join(f"{name} ×{n}" for name, n in who.most_common(2))
    return sorted(found, key=lambda b: -b.opened)[:5]


# -- header and what stands out ---------------------------------------------------

@dataclass
class ProbeInfo:
    name: str
    status: str
    hook: str | None
    error: str | None
    lost_events: int
    notes: list[str] = field(default_factory=list)  # what it could not see, and why


MAX_PROBE_NOTES = 5


def probe_notes(name: str, status: dict) -> list[str]:
    """What a running probe says it missed (meta.json's probes.NAME)."""
    notes = [f"ran {printable(d)}" for d in status.get("degraded") or () if isinstance(d, str)]
    if name == "dns" and status.get("status") == "ok":
        if status.get("wire_error"):
            notes.append(f"wire-level DNS did not start: {printable(status['wire_error'])}")
        elif status.get("wire") == "off":
            notes.append("wire-level DNS off: lookups by resolvers that bypass libc (Go, dig, "
                         "…) are not in this capture (--probes +wire)")
        skipped = [n for n in status.get("not_probed") or () if isinstance(n, dict)]
        unlisted = status.get("not_probed_unlisted")
        total = len(skipped) + (unlisted if isinstance(unlisted, int) else 0)
        if total:
            first = skipped[0] if skipped else {}
            notes.append(f"{total:,} librar{'y' if total == 1 else 'ies'} not probed, e.g. "
                         f"{printable(first.get('path', '?'))}: "
                         f"{printable(first.get('reason', '?'))}")
    return notes[:MAX_PROBE_NOTES]


@dataclass
class Header:
    title: str
    note: str | None
    host: str
    kernel: str
    started_at: str
    ended_at: str | None
    interval_s: float
    count: int
    intervals_done: int
    interrupted: bool
    trigger: str
    pids: list[int]
    probes: list[ProbeInfo]
    capture_version: str
    format: str


@dataclass
class Highlight:
    text: str
    level: str = "info"          # info / warn
    target: str | None = None    # the table holding its rows
    filter: str | None = None    # what to type into that table's filter box
    ts: float | None = None      # when it happened


@dataclass
class ReportData:
    header: Header
    clock: Clock
    highlights: list[Highlight]
    warnings: list[str]
    notes: list[str]             # what the numbers cannot say (guesses, bounds)
    bandwidth: Bandwidth
    processes: list[ProcessRow]
    process_count: int
    groups: list[ConnectionGroup]
    group_count: int
    sessions: Sessions
    dns: Dns
    source: str
    hosts: list[HostRow] = field(default_factory=list)     # one per capture
    conversations: Conversations | None = None           # fleet reports

    @property
    def fleet(self) -> bool:
        return len(self.hosts) > 1

    @property
    def probe_status(self) -> dict[str, str]:
        """Per probe: `ok` if it ran on any host, else the first host's status."""
        status: dict[str, str] = {}
        for row in self.hosts:
            for p in row.header.probes:
                if status.get(p.name) != "ok":
                    status[p.name] = p.status
        return status


@dataclass
class HostRow:
    header: Header
    totals: HostTotals
    source: str


def _header(meta: dict, title: str | None, note: str | None) -> Header:
    lost = meta.get("lost_events") or {}
    probes = [ProbeInfo(name, p.get("status", "?"), p.get("hook"), p.get("error"),
                        int(lost.get(name) or 0), probe_notes(name, p))
              for name, p in (meta.get("probes") or {}).items()]
    host = printable(meta.get("host", "?"))  # the hosts table and fleet labels show it
    started = str(meta.get("started_at", "?"))
    return Header(title or meta.get("title") or f"nettrail capture on {host}",
                  note if note is not None else meta.get("note"), host,
                  str(meta.get("kernel", "?")), started, meta.get("ended_at"),
                  float(meta.get("interval_s") or 0), int(meta.get("count") or 0),
                  int(meta.get("intervals_done") or 0), bool(meta.get("interrupted")),
                  str(meta.get("trigger", "manual")),
                  list((meta.get("filters") or {}).get("pids") or []), probes,
                  str(meta.get("version", "?")), str(meta.get("format")))


def _warnings(header: Header) -> Iterator[str]:
    if not header.ended_at:
        yield ("the capture did not finish (no end time): data up to its last complete "
               "interval is shown")
    for p in header.probes:
        if p.status == "failed":
            yield f"{p.name} probe failed: {p.error}"
        elif p.error:
            yield f"{p.name} probe: {p.error}"
        if p.lost_events:
            yield (f"{p.name} probe lost {p.lost_events} events (kernel buffers full): "
                   "its numbers are a lower bound")


def _notes(data: ReportData, tally: Tally) -> Iterator[str]:
    if tally.guessed_sides:
        yield (f"client and server sides of {tally.guessed_sides:,} connections are guessed "
               "from port numbers (the capture did not record them): marked “guessed”")
    for what, table in (("processes", tally.processes), ("connection groups", tally.groups)):
        if not table.exact:
            yield (f"more distinct {what} than the report keeps ({2 * table.capacity:,}): "
                   f"any left out had at most {table.floor:,.0f} records; counts marked ≈ "
                   "are upper bounds")
    if not data.dns.hosts_exact:
        yield (f"more distinct hostnames than the report keeps ({2 * KEEP_NAMES:,}): the "
               "most looked-up are shown; counts marked ≈ are upper bounds")


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def _bps(bits_per_s: float) -> str:
    return bytes_rate(bits_per_s / 8, 1.0)


def _traffic_highlights(data: ReportData, status: dict[str, str]) -> Iterator[Highlight]:
    bw = data.bandwidth
    movers = [p for p in data.processes if p.rx_bytes + p.tx_bytes]
    if not movers:
        if status.get("bandwidth") == "ok":
            yield Highlight("no TCP traffic seen")
        return
    top = movers[0]
    total = bw.rx_bytes + bw.tx_bytes
    yield Highlight(f"top talker by bytes: {top.label}: {human_bytes(top.rx_bytes)} in, "
                    f"{human_bytes(top.tx_bytes)} out "
                    f"({_share(top.rx_bytes + top.tx_bytes, total)} of {human_bytes(total)})",
                    target="t-processes", filter=top.label)
    fastest = max(movers, key=lambda p: p.peak_bps)
    yield Highlight(f"top talker by rate: {fastest.label}: {_bps(fastest.peak_bps)} in its "
                    f"busiest interval (all processes: peak {_bps(bw.peak_bps)})",
                    target="t-processes", filter=fastest.label)


def _port(g: ConnectionGroup) -> str:
    return f" port {g.port}" if g.side == "server" else ""


def _session_highlights(data: ReportData, status: dict[str, str]) -> Iterator[Highlight]:
    ss = data.sessions
    if not ss.count:
        if status.get("sessions") == "ok":
            yield Highlight("no TCP sessions seen")
        return
    for end, words in (("refused", "connections refused"), ("reset", "connections reset"),
                       ("timeout", "connections timed out")):
        if ss.ends[end]:
            worst = Counter({g.label + " → " + g.remote + _port(g): g.ends.get(end, 0)
                             for g in data.groups}).most_common(1)
            by = f" (most: {worst[0][0]} ×{worst[0][1]})" if worst and worst[0][1] else ""
            yield Highlight(f"{ss.ends[end]:,} {words}{by}", "warn", "t-odd", end)
    if ss.retrans:
        yield Highlight(f"{ss.retrans:,} sessions retransmitted segments", "warn", "t-odd",
                        "retransmissions")
    if ss.high_rtt:
        yield Highlight(f"{ss.high_rtt:,} sessions had a round-trip time of "
                        f"{HIGH_RTT_US // 1000} ms or more", "warn", "t-odd", "high RTT")
    for b in ss.bursts[:3]:
        yield Highlight(f"burst of sessions: {b.opened:,} opened within {b.seconds:g} s "
                        f"({b.per_second:,.0f}/s) by {b.by}", "warn", "t-groups",
                        b.by.split(" ×")[0], ts=b.ts)


def _dns_highlights(data: ReportData, status: dict[str, str]) -> Iterator[Highlight]:
    dns = data.dns
    if not dns.count:
        if status.get("dns") == "ok":
            yield Highlight("no lookups seen" + (" that needed DNS" if dns.literal
                                                 + dns.from_hosts else ""))
        return
    if dns.failed:
        errors: Counter = Counter()
        for h in dns.hosts:
            errors.update({f"{h.name} {e}": n for e, n in h.errors.items()})
        worst = ", ".join(f"{name} ×{n}" for name, n in errors.most_common(3))
        yield Highlight(f"{dns.failed:,} lookups failed: {worst}", "warn", "t-problems")
    slowest = max((h for h in dns.hosts if h.max_ms is not None),
                  key=lambda h: h.p95_ms or 0, default=None)
    if dns.slow and slowest:
        yield Highlight(f"{dns.slow:,} lookups took {SLOW_LOOKUP_MS:g} ms or more; slowest "
                        f"name: {slowest.name}: p95 {human_ms(slowest.p95_ms)}, max "
                        f"{human_ms(slowest.max_ms)} over {slowest.count:,} lookups", "warn",
                        "t-hostnames", slowest.name)
    if dns.pending:
        oldest = max((lk for lk in dns.problems if lk.pending), key=lambda lk: lk.latency_ms,
                     default=None)
        detail = (f", oldest {oldest.name} after {human_ms(oldest.latency_ms)}" if oldest
                  else "")
        yield Highlight(f"{dns.pending:,} lookups unanswered at window end{detail}", "warn",
                        "t-problems", "no answer")


def _newcomer_highlights(data: ReportData) -> Iterator[Highlight]:
    new = [p for p in data.processes if p.new]
    if new:
        names = ", ".join(p.label for p in new[:3])
        more = f" and {len(new) - 3:,} more" if len(new) > 3 else ""
        yield Highlight(f"{len(new):,} processes appeared mid-window: {names}{more}",
                        target="t-processes", filter="new")


def _conversation_highlights(data: ReportData) -> Iterator[Highlight]:
    if data.conversations is None:
        return
    retransmitting = max(data.conversations.rows, key=lambda c: c.retrans_segs, default=None)
    if retransmitting and retransmitting.retrans_segs:
        c = retransmitting
        yield Highlight(f"{c.text} ({c.service}): {c.retrans_segs:,} segments retransmitted "
                        f"over {c.connections:,} connections ({c.client_retrans_segs or 0:,} "
                        f"by the client, {c.server_retrans_segs or 0:,} by the server)",
                        "warn", "t-conversations", f"{c.client_host}:{c.client}")


def _highlights(data: ReportData) -> list[Highlight]:
    status = data.probe_status
    return [*_traffic_highlights(data, status), *_session_highlights(data, status),
            *_conversation_highlights(data), *_dns_highlights(data, status),
            *_newcomer_highlights(data)]


def _fleet_notes(data: ReportData) -> Iterator[str]:
    if data.conversations is None:
        return
    c = data.conversations
    yield (f"connections are matched across hosts by their addresses and ports as each "
           f"host's sockets saw them ({c.matched:,} of {c.sessions:,} sessions matched): "
           "address translation (NAT, Kubernetes services, load balancers) shows the two "
           "ends different addresses, so those sessions stay unmatched, as do loopback "
           "sessions and those whose other host was not captured")
    if c.given_up:
        yield (f"{c.given_up:,} sessions waited for their other end beyond the report's "
               "bounds and were left unmatched")
    if not c.exact:
        yield (f"more distinct conversations than the report keeps "
               f"({2 * KEEP_CONVERSATIONS:,}): counts marked ≈ are upper bounds")


def aggregate(captures: list[CaptureDir], title: str | None = None,
              note: str | None = None) -> ReportData:
    """One capture, or a fleet: several captures of different hosts on one
    clock, processes named by host, connections matched across hosts."""
    fleet = len(captures) > 1
    hosts = [printable(c.meta["host"]) if fleet else None for c in captures]
    headers = [_header(c.meta, title, note) for c in captures]
    tally = Tally(make_clock([c.meta for c in captures]), Resolutions())
    for host, c in zip(hosts, captures):
        tally.hosts[host] = HostTotals(start=_window(c.meta)[0])
    matcher = Matcher() if fleet else None

    def streams(probe: str) -> Iterator[tuple[str | None, Iterable[dict]]]:
        return ((host, c.records(probe)) for host, c in zip(hosts, captures))

    dns = aggregate_dns(streams("dns"), tally)
    slots = ([fleet_intervals(tally.clock, max(h.interval_s for h in headers))] * len(captures)
             if fleet else [own_intervals(h.interval_s) for h in headers])
    bandwidth = aggregate_bandwidth(((host, records, slot) for (host, records), slot in zip(
        streams("bandwidth"), slots)), tally)
    sessions = aggregate_sessions(streams("sessions"), tally, matcher)
    header = headers[0]
    if fleet:
        header.title = title or f"nettrail fleet report: {len(captures)} hosts"
    data = ReportData(header, tally.clock, [], [], [], bandwidth, tally.process_rows(),
                      len(tally.processes) + tally.processes.dropped, tally.group_rows(),
                      len(tally.groups) + tally.groups.dropped, sessions, dns,
                      str(captures[0].path),
                      [HostRow(h, tally.host(host), str(c.path))
                       for h, host, c in zip(headers, hosts, captures)],
                      matcher.result(TABLE_ROWS) if matcher else None)
    data.warnings = [f"{host}: {warning}" if host is not None else warning
                     for host, h, c in zip(hosts, headers, captures)
                     for warning in (*_warnings(h), *c.warnings)]
    data.notes = [*_notes(data, tally), *_fleet_notes(data)]
    data.highlights = _highlights(data)
    return data
