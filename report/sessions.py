"""The sessions log: sessions over time, their ends and durations, bursts,
the sessions worth a look on their own, and (fleet reports) both ends of
connections between captured hosts."""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nettrail.format.logs.sessions import FAILED_ENDS, seen_from_both_ends
from nettrail.headline import Headline
from nettrail.report.bounded import LogSketch
from nettrail.report.clock import Clock
from nettrail.report.conversations import Matcher, by_time
from nettrail.report.summaries import count_summaries
from nettrail.report.labels import (endpoint, group_label, percentile,
                                    process_label, qualified, side_of)
from nettrail.report.tally import TABLE_ROWS, GroupStats, Tally
from nettrail.units import printable

HIGH_RTT_US = 100_000
BURST_PER_SECOND = 20

Streams = Iterable[tuple["str | None", Headline, Iterable[list[Any]]]]


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
    remote_is: str | None = None     # own.LOOPBACK, own.OWN (this host) or None: own.mark

    @property
    def label(self) -> str:
        return qualified(self.host, self.process)

    @property
    def unanswered(self) -> bool:
        """A connect still waiting at the window's end: SYNs sent, nothing back."""
        return (self.side == "client" and self.state == "open" and not self.srtt_us
                and not self.rx_bytes and not self.tx_bytes)

    @property
    def problems(self) -> list[str]:
        if self.unanswered:
            return ["connect unanswered"]
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
    retrans: int = 0       # sessions that retransmitted
    high_rtt: int = 0
    tx_bytes: int = 0
    rx_bytes: int = 0
    durations: LogSketch = field(default_factory=LogSketch)
    buckets: list[SessionBucket] = field(default_factory=list)
    odd: list[Session] = field(default_factory=list)   # newest first, at most TABLE_ROWS
    odd_count: int = 0
    bursts: list[Burst] = field(default_factory=list)
    summarised: int = 0    # of `count`: from the capture's summaries (report/summaries.py)


def aggregate_sessions(streams: Streams, tally: Tally, matcher: Matcher | None = None,
                       summaries: Streams = ()) -> Sessions:
    """Matcher: a fleet report's, fed every session to pair connections' ends.
    Summaries: the sessions the capture counted past its line budget."""
    s = Sessions(buckets=[SessionBucket() for _ in range(tally.clock.buckets)])
    odd: list[tuple[float, int, Session]] = []  # the newest TABLE_ROWS, a heap by time
    logs = [_counted(host, headline, blocks) for host, headline, blocks in streams]
    if matcher:
        # a fleet's hosts in one time order: a connection's two ends arrive
        # close together, within the matcher's bounds
        for host, chunk in by_time(logs):
            matcher.feed(host or "", chunk,
                         [_count_session_record(s, tally, host, r, odd) for r in chunk])
    else:
        for host, block in itertools.chain.from_iterable(logs):
            for r in block:
                _count_session_record(s, tally, host, r, odd)
    count_summaries(s, tally, summaries)
    s.odd = [session for _, _, session in sorted(odd, key=lambda x: (-x[0], x[1]))]
    s.bursts = _bursts(s.buckets, tally.clock)
    return s


def _counted(host: str | None, headline: Headline, blocks: Iterable[list[Any]]
             ) -> Iterator[tuple[str | None, list[Any]]]:
    """(host, block) of one capture's log, its headline counted a block at a time."""
    for block in blocks:
        headline.add("sessions", block)
        if block:
            yield host, block


def _count_session_record(s: Sessions, tally: Tally, host: str | None, r: Any,
                          odd: list[tuple[float, int, Session]]) -> tuple[str, str | None]:
    """Count one session everywhere it shows; its (process, group) labels
    (a fleet's matcher takes them)."""
    closed = r.state == "closed"
    opened_at, end = r.opened_at, r.end
    failed = end in FAILED_ENDS and not seen_from_both_ends(r.side, r.raddr)
    s.count += 1
    s.closed += closed
    s.open += not closed
    s.before_window += opened_at is None
    if failed or end not in FAILED_ENDS:  # a failure seen at both ends: once
        s.ends[end or r.state] += 1
    s.failed += failed
    s.retrans += bool(r.retrans_segs)
    s.high_rtt += (r.srtt_us or 0) >= HIGH_RTT_US
    s.tx_bytes += r.tx_bytes
    s.rx_bytes += r.rx_bytes
    tally.own.add(host, r.laddr)
    if closed and r.duration_ms is not None:
        s.durations.add(r.duration_ms)
    process, group = process_label(r.pid, r.comm), group_label(r)
    proc = tally.process(host, process, group, opened_at if opened_at is not None else r.ts)
    proc.sessions += 1
    proc.failed_sessions += failed
    # a server was running before it accepted (it listened first): never "new"
    if not proc.before_window:
        proc.before_window = opened_at is None or side_of(r)[0] == "server"
    _count_session(tally.group(host, r, opened_at), r, opened_at)
    _bucket_session(s.buckets, tally.clock, r, qualified(host, group or process), failed)
    if failed or r.retrans_segs or (r.srtt_us or 0) >= HIGH_RTT_US:  # Session.problems
        # the newest whatever order the hosts' records came in (by_time is by chunk)
        kept = (r.ts, s.odd_count, _session(host, r, tally.names_of(r, host, opened_at)))
        (heapq.heappush if len(odd) < TABLE_ROWS else heapq.heappushpop)(odd, kept)
        s.odd_count += 1
    return process, group


def _count_session(group: GroupStats, r: Any, opened_at: float | None) -> None:
    group.sessions += 1
    group.open += r.state == "open"
    group.before_window += opened_at is None
    group.ends[r.end or r.state] += 1
    group.session_rx_bytes += r.rx_bytes
    group.session_tx_bytes += r.tx_bytes
    group.retrans_segs += r.retrans_segs or 0
    group.retrans_sessions += bool(r.retrans_segs)
    group.syn_retrans_segs += r.syn_retrans_segs or 0
    if r.connect_us is not None:
        group.max_connect_us = max(group.max_connect_us or 0, r.connect_us)
    if r.srtt_us is not None:
        group.max_srtt_us = max(group.max_srtt_us or 0, r.srtt_us)
    _count_times(group, r)
    group.first_ts = min(group.first_ts, opened_at if opened_at is not None else r.ts)
    group.last_ts = max(group.last_ts, r.ts)


def _count_times(group: GroupStats, r: Any) -> None:
    """How long its sessions took, and the path's RTT (the windowed minimum
    where known: what a round trip costs without queueing)."""
    if r.state == "closed" and r.duration_ms is not None:
        group.durations = group.durations or LogSketch()
        group.durations.add(r.duration_ms)
    rtt_us = r.min_rtt_us if r.min_rtt_us is not None else r.srtt_us
    if rtt_us:
        group.rtts = group.rtts or LogSketch()
        group.rtts.add(rtt_us)


def _bucket_session(buckets: list[SessionBucket], clock: Clock, r: Any, who: str,
                    failed: bool) -> None:
    if r.opened_at is not None:
        opened = buckets[clock.bucket(r.opened_at)]
        opened.opened += 1
        if who in opened.groups or len(opened.groups) < 16:
            opened.groups[who] += 1
    if r.state == "closed":
        closed = buckets[clock.bucket(r.ts)]
        closed.closed += 1
        closed.failed += failed
        closed.retrans += bool(r.retrans_segs)


def _session(host: str | None, r: Any, hostnames: list[str]) -> Session:
    side, guessed = side_of(r)
    return Session(r.ts, host, process_label(r.pid, r.comm), endpoint(r.laddr, r.lport),
                   endpoint(r.raddr, r.rport), side, guessed, hostnames,
                   r.tx_bytes, r.rx_bytes, r.duration_ms, r.state, r.end,
                   r.retrans_segs, r.srtt_us, r.opened_at)


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
