"""The dns log: lookups as people think of them (a libc call with the wire
queries it sent, joined exactly on (pid, call_ts), or a wire query no libc
call asked for), per-name statistics, and the lookups worth a look."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nettrail.format.logs.dns import resolved_by
from nettrail.headline import Headline
from nettrail.report.bounded import HeavyHitters, LogSketch, keep_few
from nettrail.report.labels import Owner, group_label, naming_owner, process_label, qualified
from nettrail.report.names import Resolutions
from nettrail.report.tally import TABLE_ROWS, Tally
from nettrail.report.wire import Query, Wire, query_of
from nettrail.units import printable

KEEP_NAMES = 2_000
KEEP_JOIN = 65_536          # libc calls and wire queries waiting to be joined
WIRE_NOTES = 32             # wire queries listed per lookup
SLOW_LOOKUP_MS = 100.0

Blocks = Iterable[tuple["str | None", Headline, Iterable[list[Any]]]]


@dataclass
class Lookup:
    """One lookup: a libc call with the wire queries it sent, or a wire
    query no libc call asked for."""
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
    owner: Owner
    pid: int | None
    addresses: list[str]
    resolved_by: str | None
    conf: tuple | None = None  # (host, resolv_conf id): the resolver configuration it used
    wire: list[str] = field(default_factory=list)  # "A 10.0.0.2:53 NXDOMAIN 3.1 ms"
    queries: int = 0           # wire queries it sent (report/wire.py counts them)
    waited_ms: float = 0.0     # from the call to the end of its last failed query

    @property
    def label(self) -> str:
        return qualified(self.host, self.process)

    @property
    def outcome(self) -> str:
        if self.pending:
            return "no answer at window end"
        return self.error or ("answered" if self.ok else "failed")


def _lookup(r: Any, host: str | None) -> Lookup:
    return Lookup(r.ts, printable(r.name), r.source, r.latency_ms, r.ok, r.pending,
                  printable(r.error) if r.error else None, host,
                  process_label(r.pid, r.comm), group_label(r), naming_owner(r, host), r.pid,
                  [printable(a) for a in r.addresses[:8]], resolved_by(r.resolved_by, r.name),
                  (host, r.resolv_conf) if r.resolv_conf is not None else None)


class CallJoin:
    """Joins each wire query to the libc call that sent it: the same pid, and
    its `call_ts` is the call's `ts` (the capture stamps both from one
    clock reading), whichever of the two comes first in the log. Bounded:
    at most KEEP_JOIN calls and query keys wait; a query whose call never
    comes is `orphaned` (counted, not a lookup: its call was the lookup)."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.calls: dict[tuple, Lookup] = {}
        self.waiting: dict[tuple, list[Query]] = {}
        self.joined = 0
        self.orphaned = 0

    def call(self, lookup: Lookup) -> None:
        key = (lookup.pid, lookup.ts)
        for q in self.waiting.pop(key, ()):
            self._join(lookup, q)
        if len(self.calls) >= KEEP_JOIN:
            del self.calls[next(iter(self.calls))]
        self.calls[key] = lookup

    def query(self, r: Any) -> None:
        key = (r.pid, r.call_ts)
        call = self.calls.get(key)
        if call is not None:
            self._join(call, query_of(r))
            return
        if key not in self.waiting and len(self.waiting) >= KEEP_JOIN:
            self.orphaned += len(self.waiting.pop(next(iter(self.waiting))))
        self.waiting.setdefault(key, []).append(query_of(r))

    def _join(self, call: Lookup, q: Query) -> None:
        if len(call.wire) < WIRE_NOTES:
            call.wire.append(q.note)
        self.wire.joined(call, q)
        self.joined += 1

    def finish(self) -> None:
        self.orphaned += sum(map(len, self.waiting.values()))
        self.waiting.clear()


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
    failed_max_ms: float | None = None   # the longest failed or unanswered one (its wait)


@dataclass
class Dns:
    count: int = 0                # lookups that asked DNS (the headline's `lookups`)
    failed: int = 0
    pending: int = 0
    slow: int = 0
    literal: int = 0              # IP literals: no lookup happened
    from_hosts: int = 0           # answered from the hosts file
    wire_linked: int = 0          # wire queries shown with the libc call that sent them
    wire_orphaned: int = 0        # wire queries whose libc call is not in the log
    hosts: list[HostStats] = field(default_factory=list)
    host_count: int = 0
    hosts_exact: bool = True
    problems: list[Lookup] = field(default_factory=list)  # failed, pending, slow; newest first
    problem_count: int = 0
    timeline: list[Lookup] = field(default_factory=list)  # every lookup, the first TABLE_ROWS
    buckets: list[DnsBucket] = field(default_factory=list)
    latency: LogSketch = field(default_factory=LogSketch)
    wire: Wire = field(default_factory=Wire)


def aggregate_dns(streams: Blocks, tally: Tally, resolutions: Resolutions) -> Dns:
    """Every capture's lookups; `resolutions` learns which names each owner
    resolved to which addresses."""
    dns = Dns(buckets=[DnsBucket() for _ in range(tally.clock.buckets)])
    names: HeavyHitters[NameStats] = HeavyHitters(KEEP_NAMES, NameStats)
    problems: deque[Lookup] = deque(maxlen=TABLE_ROWS)
    for host, headline, blocks in streams:
        join = CallJoin(dns.wire)
        for block in blocks:
            headline.add("dns", block)
            for lookup in _lookups(block, host, join):
                _count_lookup(dns, names, tally, problems, lookup)
                if lookup.ok and lookup.resolved_by not in ("literal", "hosts"):
                    resolutions.add(lookup.owner, lookup.ts, lookup.name, lookup.addresses)
        join.finish()
        dns.wire_linked += join.joined
        dns.wire_orphaned += join.orphaned
    dns.problems = sorted(problems, key=lambda lk: -lk.ts)
    dns.timeline.sort(key=lambda lk: lk.ts)
    dns.hosts = [_host_stats(name, s) for name, s in names.top(
        TABLE_ROWS, key=lambda s: (-(s.latency.quantile(0.95) or 0), -s.weight))]
    dns.host_count = len(names) + names.dropped
    dns.hosts_exact = names.exact
    return dns


def _lookups(block: list[Any], host: str | None, join: CallJoin) -> Iterator[Lookup]:
    for r in block:
        if r.call_ts is not None:  # a query a libc call sent: part of that lookup
            join.query(r)
            continue
        lookup = _lookup(r, host)
        if r.source == "libc":
            join.call(lookup)
        else:
            lookup.wire.append(query_of(r).note)
        yield lookup


def _count_lookup(dns: Dns, names: HeavyHitters[NameStats], tally: Tally,
                  problems: deque[Lookup], lk: Lookup) -> None:
    process = tally.process(lk.host, lk.process, lk.group, lk.ts)
    if lk.resolved_by == "literal":
        dns.literal += 1
        return
    if lk.resolved_by == "hosts":
        dns.from_hosts += 1
        return
    process.lookups += 1  # counted as the headline counts lookups
    dns.count += 1
    if len(dns.timeline) < TABLE_ROWS:
        dns.timeline.append(lk)
    failed = not lk.ok and not lk.pending
    slow = not lk.pending and lk.latency_ms >= SLOW_LOOKUP_MS
    dns.failed += failed
    dns.pending += lk.pending
    dns.slow += slow
    bucket = dns.buckets[tally.clock.bucket(lk.ts)]
    bucket.lookups += 1
    bucket.failed += failed or lk.pending
    bucket.slow += slow
    if failed or lk.pending:
        bucket.failed_max_ms = max(bucket.failed_max_ms or 0.0, lk.latency_ms)
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
    keep_few(stats.processes, lk.label, 6)
    for address in lk.addresses:
        keep_few(stats.addresses, address, 5)
    stats.sources.add(lk.source)
    if failed or lk.pending or slow:
        problems.append(lk)
        dns.problem_count += 1


def _host_stats(name: object, s: NameStats) -> HostStats:
    return HostStats(str(name), int(s.weight - s.error), bool(s.error), s.failures,
                     s.pending, s.slow, s.latency.quantile(0.5), s.latency.quantile(0.95),
                     s.latency.max if s.latency.count else None, list(s.processes),
                     dict(s.errors), list(s.addresses), sorted(s.sources))

