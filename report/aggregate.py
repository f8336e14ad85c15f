"""Stage 1 of the report: turn a capture into the numbers the page shows.

Dataclasses only, no HTML. Logs are streamed: a million bandwidth rows are
summed as they are read, never held. DNS is read first so that addresses in
the other logs can be shown with the hostnames that resolved to them."""

from __future__ import annotations

import heapq
import ipaddress
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from nettrail.report.reader import CaptureDir
from nettrail.units import human_bytes, human_ms

TIMELINE_PROCESSES = 6
TOP_PROCESSES = 20
TOP_CONNECTIONS = 25
TOP_SESSIONS = 100
TOP_ENDPOINTS = 20
TOP_HOSTS = 100
TOP_FAILURES = 50
SHORT_SESSION_MS = 1000.0
BURST_PER_SECOND = 20  # short sessions within one second that make a burst


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..1)."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def process_label(pid: int | None, comm: str) -> str:
    return f"{comm or '?'} ({pid})" if pid is not None else "unknown process"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- DNS ------------------------------------------------------------------------

@dataclass
class HostStats:
    host: str
    count: int
    failures: int
    pending: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    processes: list[str]
    errors: dict[str, int]
    addresses: list[str]


@dataclass
class Lookup:
    ts: float
    host: str
    latency_ms: float
    ok: bool
    pending: bool
    error: str | None
    process: str


@dataclass
class Dns:
    count: int = 0
    failed: int = 0
    pending: int = 0
    hosts: list[HostStats] = field(default_factory=list)
    host_count: int = 0
    lookups: list[Lookup] = field(default_factory=list)
    problems: list[Lookup] = field(default_factory=list)  # failed and pending, newest first
    problem_count: int = 0


def aggregate_dns(records: Iterable[dict]) -> tuple[Dns, dict[str, list[str]]]:
    """DNS numbers, and which hostnames resolved to each address."""
    dns = Dns()
    latencies: dict[str, list[float]] = defaultdict(list)
    rows: dict[str, dict] = {}
    resolved: dict[str, dict[str, None]] = defaultdict(dict)
    for r in records:
        host = r["name"]
        lookup = Lookup(r["ts"], host, r["latency_ms"], r["ok"], r["pending"], r["error"],
                        process_label(r["pid"], r["comm"]))
        dns.lookups.append(lookup)
        row = rows.setdefault(host, {"count": 0, "failures": 0, "pending": 0,
                                     "processes": {}, "errors": Counter(), "addresses": {}})
        row["count"] += 1
        row["processes"][lookup.process] = None
        if r["pending"]:
            row["pending"] += 1
        else:
            latencies[host].append(r["latency_ms"])
        if not r["ok"] and not r["pending"]:
            row["failures"] += 1
            row["errors"][r["error"] or "unknown"] += 1
        for address in r["addresses"]:
            row["addresses"][address] = None
            if not _is_address(host):  # a numeric "lookup" names nothing
                resolved[address][host] = None
    dns.count = len(dns.lookups)
    dns.failed = sum(row["failures"] for row in rows.values())
    dns.pending = sum(row["pending"] for row in rows.values())
    hosts = []
    for host, row in rows.items():
        values = sorted(latencies[host])
        hosts.append(HostStats(
            host, row["count"], row["failures"], row["pending"],
            percentile(values, 0.5) if values else None,
            percentile(values, 0.95) if values else None,
            values[-1] if values else None, list(row["processes"]), dict(row["errors"]),
            list(row["addresses"])))
    hosts.sort(key=lambda h: (h.p95_ms is None, -(h.p95_ms or 0), h.host))
    dns.host_count = len(hosts)
    dns.hosts = hosts[:TOP_HOSTS]
    problems = [lk for lk in dns.lookups if not lk.ok]
    dns.problem_count = len(problems)
    dns.problems = sorted(problems, key=lambda lk: -lk.ts)[:TOP_FAILURES]
    return dns, {address: list(hosts) for address, hosts in resolved.items()}


# -- bandwidth ------------------------------------------------------------------

@dataclass
class ProcessTraffic:
    label: str
    rx_bytes: int
    tx_bytes: int
    connections: int


@dataclass
class Connection:
    process: str
    family: str
    local: str
    remote: str
    hostnames: list[str]
    rx_bytes: int
    tx_bytes: int


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
    processes: list[ProcessTraffic] = field(default_factory=list)
    process_count: int = 0
    connections: list[Connection] = field(default_factory=list)
    connection_count: int = 0
    interval_s: float = 0.0
    intervals: int = 0
    series: list[Series] = field(default_factory=list)


def endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def aggregate_bandwidth(records: Iterable[dict], hostnames: dict[str, list[str]],
                        interval_s: float, intervals: int) -> Bandwidth:
    bw = Bandwidth(interval_s=interval_s)
    conns: dict[tuple, list[int]] = {}
    per_interval: dict[tuple[int, str], list[int]] = {}
    last_interval = intervals
    for r in records:
        proc = process_label(r["pid"], r["comm"])
        rx, tx = r["rx_bytes"], r["tx_bytes"]
        bw.rows += 1
        key = (proc, r["family"], r["laddr"], r["lport"], r["raddr"], r["rport"])
        sums = conns.setdefault(key, [0, 0])
        sums[0] += rx
        sums[1] += tx
        slot = per_interval.setdefault((r["interval"], proc), [0, 0])
        slot[0] += rx
        slot[1] += tx
        last_interval = max(last_interval, r["interval"])
    by_process: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (proc, *_), (rx, tx) in conns.items():
        totals = by_process[proc]
        totals[0] += rx
        totals[1] += tx
        totals[2] += 1
    bw.rx_bytes = sum(t[0] for t in by_process.values())
    bw.tx_bytes = sum(t[1] for t in by_process.values())
    ranked = sorted(by_process.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))
    bw.process_count = len(ranked)
    bw.processes = [ProcessTraffic(p, rx, tx, n) for p, (rx, tx, n) in ranked[:TOP_PROCESSES]]
    bw.connection_count = len(conns)
    top = heapq.nsmallest(TOP_CONNECTIONS, conns.items(),
                          key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))
    bw.connections = [Connection(proc, fam, endpoint(la, lp), endpoint(ra, rp),
                                 hostnames.get(ra, []), rx, tx)
                      for (proc, fam, la, lp, ra, rp), (rx, tx) in top]
    bw.intervals = last_interval
    bw.series = _timeline([p for p, _ in ranked], per_interval, last_interval)
    return bw


def _timeline(ranked: list[str], per_interval: dict[tuple[int, str], list[int]],
              intervals: int) -> list[Series]:
    """RX/TX per interval for the top processes, the rest as "other"."""
    shown = ranked[:TIMELINE_PROCESSES]
    series = {p: Series(p, [0] * intervals, [0] * intervals) for p in shown}
    if len(ranked) > len(shown):
        series["other"] = Series(f"other ({len(ranked) - len(shown)} processes)",
                                 [0] * intervals, [0] * intervals)
    for (interval, proc), (rx, tx) in per_interval.items():
        if interval < 1:
            continue
        s = series.get(proc) or series["other"]
        s.rx_bytes[interval - 1] += rx
        s.tx_bytes[interval - 1] += tx
    return list(series.values())


# -- sessions -------------------------------------------------------------------

@dataclass
class Session:
    process: str
    family: str
    local: str
    remote: str
    hostnames: list[str]
    tx_bytes: int
    rx_bytes: int
    duration_ms: float | None
    state: str
    before_window: bool


@dataclass
class Endpoint:
    address: str
    port: int
    hostnames: list[str]
    sessions: int
    tx_bytes: int
    rx_bytes: int


@dataclass
class Burst:
    process: str
    peer: str
    hostnames: list[str]
    short_sessions: int
    peak_per_second: int


@dataclass
class Sessions:
    count: int = 0
    closed: int = 0
    open: int = 0
    before_window: int = 0
    tx_bytes: int = 0
    rx_bytes: int = 0
    top: list[Session] = field(default_factory=list)
    durations_ms: list[float] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    endpoint_count: int = 0
    bursts: list[Burst] = field(default_factory=list)


def service_port(r: dict) -> int:
    """The side that is not an ephemeral port: the service the session used."""
    return min(r["lport"], r["rport"])


def aggregate_sessions(records: Iterable[dict], hostnames: dict[str, list[str]]) -> Sessions:
    s = Sessions()
    heap: list[tuple[int, int, dict]] = []
    endpoints: dict[tuple[str, int], list[int]] = {}
    short: dict[tuple[str, str, int], Counter[int]] = defaultdict(Counter)
    for n, r in enumerate(records):
        s.count += 1
        closed = r["state"] == "closed"
        s.closed += closed
        s.open += not closed
        s.before_window += r["opened_at"] is None
        s.tx_bytes += r["tx_bytes"]
        s.rx_bytes += r["rx_bytes"]
        entry = (r["tx_bytes"] + r["rx_bytes"], -n, r)
        if len(heap) < TOP_SESSIONS:
            heapq.heappush(heap, entry)
        else:
            heapq.heappushpop(heap, entry)
        duration = r["duration_ms"]
        if closed and duration is not None:
            s.durations_ms.append(duration)
        peer = (r["raddr"], service_port(r))
        sums = endpoints.setdefault(peer, [0, 0, 0])
        sums[0] += 1
        sums[1] += r["tx_bytes"]
        sums[2] += r["rx_bytes"]
        if closed and duration is not None and duration < SHORT_SESSION_MS:
            short[(process_label(r["pid"], r["comm"]), *peer)][int(r["ts"])] += 1
    s.top = [_session(r, hostnames) for _, _, r in sorted(heap, reverse=True)]
    s.endpoint_count = len(endpoints)
    ranked = sorted(endpoints.items(), key=lambda kv: (-kv[1][0], kv[0]))[:TOP_ENDPOINTS]
    s.endpoints = [Endpoint(a, p, hostnames.get(a, []), n, tx, rx)
                   for (a, p), (n, tx, rx) in ranked]
    bursts = [Burst(proc, f"{a} port {p}", hostnames.get(a, []), sum(c.values()),
                    max(c.values()))
              for (proc, a, p), c in short.items() if max(c.values()) >= BURST_PER_SECOND]
    s.bursts = sorted(bursts, key=lambda b: (-b.short_sessions, b.process))[:5]
    return s


def _session(r: dict, hostnames: dict[str, list[str]]) -> Session:
    return Session(process_label(r["pid"], r["comm"]), r["family"],
                   endpoint(r["laddr"], r["lport"]), endpoint(r["raddr"], r["rport"]),
                   hostnames.get(r["raddr"], []), r["tx_bytes"], r["rx_bytes"],
                   r["duration_ms"], r["state"], r["opened_at"] is None)


# -- header and highlights --------------------------------------------------------

@dataclass
class ProbeInfo:
    name: str
    status: str
    hook: str | None
    error: str | None
    lost_events: int


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


@dataclass
class Highlight:
    text: str
    level: str = "info"  # info / warn


@dataclass
class ReportData:
    header: Header
    highlights: list[Highlight]
    warnings: list[str]
    bandwidth: Bandwidth
    sessions: Sessions
    dns: Dns
    source: str


def _header(meta: dict, title: str | None, note: str | None) -> Header:
    lost = meta.get("lost_events") or {}
    probes = [ProbeInfo(name, p.get("status", "?"), p.get("hook"), p.get("error"),
                        int(lost.get(name) or 0))
              for name, p in (meta.get("probes") or {}).items()]
    host = str(meta.get("host", "?"))
    started = str(meta.get("started_at", "?"))
    return Header(title or meta.get("title") or f"nettrail capture on {host}",
                  note if note is not None else meta.get("note"), host,
                  str(meta.get("kernel", "?")), started, meta.get("ended_at"),
                  float(meta.get("interval_s") or 0), int(meta.get("count") or 0),
                  int(meta.get("intervals_done") or 0), bool(meta.get("interrupted")),
                  str(meta.get("trigger", "manual")),
                  list((meta.get("filters") or {}).get("pids") or []), probes,
                  str(meta.get("version", "?")))


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


def _highlights(data: ReportData) -> list[Highlight]:
    out: list[Highlight] = []
    bw, ss, dns = data.bandwidth, data.sessions, data.dns
    status = {p.name: p.status for p in data.header.probes}
    if bw.processes:
        for direction, attr in (("received", "rx_bytes"), ("sent", "tx_bytes")):
            top = max(bw.processes, key=lambda p: getattr(p, attr))
            total = getattr(bw, attr)
            if getattr(top, attr):
                share = 100 * getattr(top, attr) / total
                out.append(Highlight(f"{top.label} {direction} the most: "
                                     f"{human_bytes(getattr(top, attr))} "
                                     f"({share:.0f}% of {human_bytes(total)})"))
    elif status.get("bandwidth") == "ok":
        out.append(Highlight("no TCP traffic seen"))
    if ss.top:
        big = ss.top[0]
        names = f" ({', '.join(big.hostnames)})" if big.hostnames else ""
        duration = (f", lasted {human_ms(big.duration_ms)}" if big.duration_ms is not None
                    else "")
        out.append(Highlight(f"largest session: {big.process} {big.local} ↔ {big.remote}"
                             f"{names}: received {human_bytes(big.rx_bytes)}, sent "
                             f"{human_bytes(big.tx_bytes)}{duration}"))
    elif status.get("sessions") == "ok":
        out.append(Highlight("no TCP sessions seen"))
    for b in ss.bursts[:2]:
        out.append(Highlight(f"burst of short sessions: {b.process} ↔ {b.peer}: "
                             f"{b.short_sessions} sessions under 1 s, up to "
                             f"{b.peak_per_second} in one second", "warn"))
    if ss.endpoints and ss.endpoints[0].sessions > 1:
        e = ss.endpoints[0]
        names = f" ({', '.join(e.hostnames)})" if e.hostnames else ""
        out.append(Highlight(f"most sessions with {endpoint(e.address, e.port)}{names}: "
                             f"{e.sessions}"))
    for h in [h for h in dns.hosts if h.p95_ms is not None][:3]:
        out.append(Highlight(f"slowest to resolve: {h.host}: p95 {human_ms(h.p95_ms)} "
                             f"(p50 {human_ms(h.p50_ms)}, max {human_ms(h.max_ms)}, "
                             f"{h.count} lookups)", "warn" if h.p95_ms >= 100 else "info"))
    if dns.failed:
        errors = Counter()
        for h in dns.hosts:
            errors.update({f"{h.host} {e}": n for e, n in h.errors.items()})
        worst = ", ".join(f"{name} ×{n}" for name, n in errors.most_common(3))
        out.append(Highlight(f"{dns.failed} lookups failed: {worst}", "warn"))
    if dns.pending:
        oldest = max((lk for lk in dns.lookups if lk.pending), key=lambda lk: lk.latency_ms)
        out.append(Highlight(f"{dns.pending} lookups unanswered at window end, oldest "
                             f"{oldest.host} after {human_ms(oldest.latency_ms)}", "warn"))
    if not dns.count and status.get("dns") == "ok":
        out.append(Highlight("no lookups seen"))
    return out


def aggregate(capture: CaptureDir, title: str | None = None, note: str | None = None
              ) -> ReportData:
    meta = capture.meta
    header = _header(meta, title, note)
    dns, hostnames = aggregate_dns(capture.records("dns"))
    bandwidth = aggregate_bandwidth(capture.records("bandwidth"), hostnames,
                                    header.interval_s, header.intervals_done)
    sessions = aggregate_sessions(capture.records("sessions"), hostnames)
    data = ReportData(header, [], [], bandwidth, sessions, dns, str(capture.path))
    data.warnings = [*_warnings(header), *capture.warnings]
    data.highlights = _highlights(data)
    return data
