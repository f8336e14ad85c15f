"""Stage 1 of the report: turn captures into the numbers the page shows.

Dataclasses only: no HTML, no wording (findings are data, report/findings.py).
Logs are streamed a block at a time and summed as they are read; memory is
bounded whatever they hold (report/bounded.py and each module's limits;
docs/report.md states the bounds). The DNS log's lookups name the other
logs' addresses: its Resolutions reach them as an argument.

Every time is a Unix timestamp; every label from the logs went through
`printable` (no control characters or bidi overrides)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

from nettrail.headline import Headline
from nettrail.report.bandwidth import (Bandwidth, aggregate_bandwidth, fleet_intervals,
                                       own_intervals)
from nettrail.report.clock import Clock, make_clock, window
from nettrail.report.coverage import Unseen, udp_captured, unseen
from nettrail.report.conversations import KEEP_CONVERSATIONS, Conversations, Matcher
from nettrail.report.dns import KEEP_NAMES, Dns, aggregate_dns
from nettrail.report.drops import KEEP_DROPS, Drops, aggregate_drops
from nettrail.report.findings import Finding, findings
from nettrail.report.header import Header, header, warnings
from nettrail.report.histogram import mark as mark_durations
from nettrail.report.listeners import KEEP_LISTENERS, Listeners, aggregate_listeners
from nettrail.report.names import Resolutions
from nettrail.report.netstat import MAX_COUNTERS, KEEP_NAMESPACES, Netstat, aggregate_netstat
from nettrail.report.own import mark
from nettrail.report.programs import Who, who
from nettrail.report.ranking import Summary, summary
from nettrail.report.reader import CaptureDir
from nettrail.report.snapshot import Snapshot
from nettrail.report.sessions import Sessions, aggregate_sessions
from nettrail.report.tally import TABLE_ROWS, ConnectionGroup, ProcessRow, Tally
from nettrail.report.udp import Udp, udp_lines
from nettrail.units import printable


@dataclass
class HostRow:
    header: Header
    headline: Headline           # this capture's headline numbers
    source: str


@dataclass
class ReportData:
    header: Header
    clock: Clock
    headline: Headline           # the same numbers as meta.json's summary (all hosts)
    findings: list[Finding]
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
    who: Who | None = None                               # programs, destinations, volume
    summary: Summary | None = None                       # the page's first line
    unseen: list[Unseen] = field(default_factory=list)   # what the capture did not see
    snapshot: Snapshot | None = None                     # tcptop's view per interval
    udp: Udp = field(default_factory=Udp)                # --probes +udp
    listeners: Listeners = field(default_factory=lambda: Listeners([]))
    drops: Drops = field(default_factory=Drops)
    netstat: Netstat = field(default_factory=Netstat)
    addresses: list[str] = field(default_factory=list)  # the host's own (a single capture)

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
    if data.dns.wire_orphaned:
        yield (f"{data.dns.wire_orphaned:,} DNS queries on the wire name a libc call that is "
               "not in dns.jsonl: they are not counted as lookups")
    if data.listeners.not_kept:
        yield (f"more listening sockets than the report keeps ({KEEP_LISTENERS:,}): "
               f"{data.listeners.not_kept:,} lines of the others left out of the accept-queue "
               "findings")
    if data.drops.not_kept:
        yield (f"more distinct packet drops than the report keeps ({KEEP_DROPS:,}): "
               f"{data.drops.not_kept:,} lines of the others left out of the drops table")
    if data.netstat.not_kept or data.netstat.counters_not_kept:
        yield (f"more network namespaces or counters than the report keeps "
               f"({KEEP_NAMESPACES:,} namespaces, {MAX_COUNTERS} counters each): "
               f"{data.netstat.not_kept:,} lines and {data.netstat.counters_not_kept:,} counts "
               "left out of the counters table")
    if data.conversations is not None:
        yield from _fleet_notes(data.conversations)


def _fleet_notes(c: Conversations) -> Iterator[str]:
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


def _total(headlines: list[Headline]) -> Headline:
    """All hosts' headline numbers together (the slowest lookup of any)."""
    total = Headline()
    # the counters (default 0): not the slowest lookup, not a window's elapsed_s
    counts = [f.name for f in dataclasses.fields(Headline) if f.default is not None]
    for h in headlines:
        for name in counts:
            setattr(total, name, getattr(total, name) + getattr(h, name))
        if h.slowest_ms is not None and (total.slowest_ms is None
                                         or h.slowest_ms > total.slowest_ms):
            total.slowest_name, total.slowest_ms = h.slowest_name, h.slowest_ms
    return total


def aggregate(captures: list[CaptureDir], title: str | None = None,
              note: str | None = None) -> ReportData:
    """One capture, or a fleet: several captures of different hosts on one
    clock, processes named by host, connections matched across hosts."""
    fleet = len(captures) > 1
    hosts = [printable(c.meta["host"]) if fleet else None for c in captures]
    headers = [header(c.meta, title, note) for c in captures]
    headlines = [Headline() for _ in captures]
    clock = make_clock([c.meta for c in captures])
    resolutions = Resolutions()
    tally = Tally(clock, resolutions.names_of,
                  {host: window(c.meta)[0] for host, c in zip(hosts, captures)})
    matcher = Matcher() if fleet else None

    def streams(probe: str, summary: bool = False) -> Iterator:
        return ((host, headline, c.blocks(probe, summary))
                for host, headline, c in zip(hosts, headlines, captures))

    dns = aggregate_dns(streams("dns"), tally, resolutions)
    for host, c in zip(hosts, captures):
        dns.wire.add_confs(host, c.meta["probes"].get("dns") or {})
    slots = ([fleet_intervals(clock, max(h.interval_s for h in headers))] * len(captures)
             if fleet else [own_intervals(h.interval_s) for h in headers])
    snapshot = Snapshot()
    udp = Udp()
    bandwidth = aggregate_bandwidth((stream + (slot,) for stream, slot in zip(
        streams("bandwidth"), slots)), tally, snapshot, udp_lines(udp, (
            (host, c.blocks("udp"), slot) for host, c, slot in zip(hosts, captures, slots))))
    snapshot.keep()
    sessions = aggregate_sessions(streams("sessions"), tally, matcher,
                                  streams("sessions", summary=True))
    first = headers[0]
    if fleet:
        first = dataclasses.replace(first, title=title or
                                    f"nettrail fleet report: {len(captures)} hosts")
    data = ReportData(first, clock, _total(headlines), [], [], [], bandwidth,
                      tally.process_rows(), len(tally.processes) + tally.processes.dropped,
                      tally.group_rows(), len(tally.groups) + tally.groups.dropped, sessions,
                      dns, str(captures[0].path),
                      [HostRow(h, headline, str(c.path))
                       for h, headline, c in zip(headers, headlines, captures)],
                      matcher.result(TABLE_ROWS) if matcher else None, udp=udp)
    # read before the warnings are taken: its bad lines are among them
    data.listeners = aggregate_listeners(streams("listeners"))
    data.drops = aggregate_drops(streams("drops"))
    data.netstat = aggregate_netstat(streams("netstat"))
    data.warnings = [f"{host}: {warning}" if host is not None else warning
                     for host, h, c in zip(hosts, headers, captures)
                     for warning in (*warnings(h), *c.warnings)]
    data.notes = list(_notes(data, tally))
    data.who = who(tally)
    for rows in (data.groups, sessions.odd, snapshot.kept):
        mark(rows, tally.own)
    mark_durations(data.groups, sessions.durations)
    data.addresses = [] if fleet else tally.own.of(None)
    data.snapshot = snapshot
    data.unseen = unseen(data)
    udp.captured = udp_captured(data.probe_status)
    data.findings = findings(data)
    data.summary = summary(data.findings, _overview(data))
    return data


def _overview(data: ReportData) -> dict:
    """What the window shows, for a summary line without a likely cause."""
    v = data.who.volume if data.who else None
    return {"network_bytes": v.network_rx_bytes + v.network_tx_bytes if v else 0,
            "local_bytes": v.local_bytes if v else 0,
            "sessions": data.sessions.count, "failed_sessions": data.sessions.failed,
            "lookups": data.dns.count, "failed_lookups": data.dns.failed,
            "programs": data.who.program_count if data.who else 0,
            "seconds": data.clock.end - data.clock.start}
