"""What stands out: findings computed as data (a cause, a severity, the
numbers, and the table and filter of the rows they point at). The
templates word them (templates/findings.j2); nothing here is text for
people beyond the labels the rows already carry."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nettrail.format.logs.sessions import FAILED_ENDS
from nettrail.report.dns import SLOW_LOOKUP_MS
from nettrail.report.ranking import ranked
from nettrail.report.storms import sustained
from nettrail.report.sessions import HIGH_RTT_US

PROBLEM, INFO = "warn", "info"
# a connection group worth naming for its window: sent this long, this much of it stopped
WINDOW_BUSY_US = 100_000
WINDOW_SHARE = 0.2


@dataclass
class Finding:
    cause: str                  # what happened: the template words each cause
    severity: str = INFO        # PROBLEM or INFO
    values: dict[str, Any] = field(default_factory=dict)  # the numbers it names
    table: str | None = None    # the table holding its rows
    filter: str | None = None   # what to type into that table's filter box
    ts: float | None = None     # when it happened
    kind: str = "volume"        # failed / waiting / loss / volume (report/ranking.py)
    rank: int = 0               # its place on the page, 1 first (report/ranking.py)


def _traffic(data: Any, status: dict[str, str]) -> Iterator[Finding]:
    movers = [p for p in data.who.programs if p.rx_bytes + p.tx_bytes]
    if not movers:
        if status.get("bandwidth") == "ok":
            yield Finding("no_traffic")
        return
    top, volume = movers[0], data.who.volume
    yield Finding("top_talker_bytes", values={
        "who": top.processes[0].label if top.process_count == 1 else top.label,
        "group": top.group, "processes": top.process_count,
        "rx_bytes": top.rx_bytes, "tx_bytes": top.tx_bytes, "to": top.destinations,
        "network_bytes": volume.network_rx_bytes + volume.network_tx_bytes,
        "local_bytes": volume.local_bytes},
        table="processes", filter=top.label)
    fastest = max(movers, key=lambda p: p.peak_bps)
    yield Finding("top_talker_rate", values={"who": fastest.label, "peak_bps": fastest.peak_bps,
                                             "all_peak_bps": data.bandwidth.peak_bps},
                  table="processes", filter=fastest.label)


def _port(g: Any) -> str:
    return f" port {g.port}" if g.side == "server" else ""


def _sessions(data: Any, status: dict[str, str]) -> Iterator[Finding]:
    ss = data.sessions
    if not ss.count:
        if status.get("sessions") == "ok":
            yield Finding("no_sessions")
        return
    for end in FAILED_ENDS:
        if ss.ends[end]:
            yield Finding(end, PROBLEM, {"sessions": ss.ends[end], **_most(data, end)},
                          "odd", end)
    if ss.retrans:
        yield Finding("retransmissions", PROBLEM, {"sessions": ss.retrans}, "odd",
                      "retransmissions")
    if ss.high_rtt:
        yield Finding("high_rtt", PROBLEM, {"sessions": ss.high_rtt,
                                            "rtt_ms": HIGH_RTT_US // 1000}, "odd", "high RTT")
    for b in ss.bursts[:3]:
        yield Finding("burst", PROBLEM, {"opened": b.opened, "seconds": b.seconds,
                                         "per_second": b.per_second, "by": b.by},
                      "groups", b.by.split(" ×")[0], b.ts)


def _most(data: Any, end: str) -> dict[str, Any]:
    """Where most of one kind of failure went (counted per destination, so
    that many one-shot processes add up), and the programs that made them."""
    d = max((d for d in data.who.destinations if d.ends.get(end) and not d.other_end_counted),
            key=lambda d: d.ends[end], default=None)
    if d is None:
        return {"where": None}
    return {"where": d.text, "side": d.side, "remote": d.remote, "port": d.port,
            "at": d.ends[end],
            "by": d.programs.most_common(2), "programs": len(d.programs)}


def _why_slow(data: Any) -> Iterator[Finding]:
    """Causes the kernel counted per connection: handshakes sent again (a
    full accept queue, a lost SYN) and senders stopped by the receiver's
    window (a slow reader at the other end)."""
    retried = [g for g in data.groups if g.syn_retrans_segs]
    if retried:
        g = max(retried, key=lambda g: (g.syn_retrans_segs, g.max_connect_us or 0))
        yield Finding("handshake_retries", PROBLEM, {
            "who": g.label, "side": g.side, "remote": g.remote + _port(g),
            "segments": g.syn_retrans_segs, "slowest_us": g.max_connect_us,
            "groups": len(retried), "all": sum(x.syn_retrans_segs for x in retried)},
            "groups", g.label)
    limited = [g for g in data.groups if g.busy_us >= WINDOW_BUSY_US
               and g.rwnd_limited_us >= WINDOW_SHARE * g.busy_us]
    if limited:
        g = max(limited, key=lambda g: g.rwnd_limited_us / g.busy_us)
        yield Finding("window_limited", PROBLEM, {
            "who": g.label, "remote": g.remote + _port(g), "rwnd_us": g.rwnd_limited_us,
            "busy_us": g.busy_us, "groups": len(limited)}, "groups", g.label)


# a path worth naming for its losses: this many segments sent, this share resent
LOSSY_SENT_SEGS = 100
LOSSY_SHARE = 0.02
# sessions worth timing: this many closed in a group, half of them this long
SLOW_SESSIONS = 3
SLOW_SESSION_MS = 100.0
# a session this many round trips long waited on its server, not its path
SERVER_ROUND_TRIPS = 20


def _listeners(data: Any) -> Iterator[Finding]:
    """Listeners that dropped handshakes, with the clients that waited on
    them: sessions to (client) or on (server) that port."""
    for x in [x for x in data.listeners.rows if x.listen_drops][:3]:
        clients = [g for g in data.groups if g.host == x.host and g.port == x.port]
        waited = [g.max_connect_us for g in clients if g.max_connect_us is not None]
        yield Finding("accept_queue_overflow", PROBLEM, {
            "who": x.label, "address": x.address, "netns": x.netns,
            "listen_drops": x.listen_drops, "max_queue": x.max_queue_conns,
            "limit": x.limit_conns, "intervals": x.intervals_dropping,
            "sessions": sum(g.sessions for g in clients if g.side == "client"),
            "syn_retrans_segs": sum(g.syn_retrans_segs for g in clients),
            "slowest_us": max(waited, default=None),
            "overflows": data.netstat.of(x.host, x.netns, "TcpExtListenOverflows")},
            "groups", f"{x.port}", x.first_drop_ts)


def _lossy_paths(data: Any) -> Iterator[Finding]:
    """The path that resent the largest share of what it sent (the kernel's
    segment counts in the window), not a count of sessions."""
    lossy = [g for g in data.groups if g.sent_segs >= LOSSY_SENT_SEGS
             and g.window_retrans_segs >= LOSSY_SHARE * g.sent_segs]
    if lossy:
        g = max(lossy, key=lambda g: (g.window_retrans_segs / g.sent_segs, g.sent_segs))
        yield Finding("lossy_path", PROBLEM, {
            "who": g.label, "side": g.side, "remote": g.remote + _port(g),
            "resent_segs": g.window_retrans_segs, "sent_segs": g.sent_segs,
            "max_rtt_us": g.max_srtt_us, "groups": len(lossy),
            "drops": data.drops.on_path(g.host, *_remote_end(g))}, "groups", g.label)


def _remote_end(g: Any) -> tuple[str, int]:
    """The address and port of a group's other end (server: its clients'
    address, on its own service port)."""
    if g.side != "server":
        address, port = g.remote.rsplit(":", 1)
        return address.strip("[]"), int(port)
    return g.remote, g.port


def _drops(data: Any) -> Iterator[Finding]:
    """Packets the kernel dropped for a reason other than ordinary life's
    (a closed port, no reason given): the reason that dropped most, where."""
    unusual = data.drops.unusual
    if unusual:
        reason, packets = next(iter(unusual.items()))
        row = data.drops.top(reason)
        yield Finding("packet_drops", PROBLEM, {
            "reason": reason, "packets": packets, "netns": row and row.netns,
            "source": row and row.source, "destination": row and row.destination,
            "row_packets": row.packets if row else 0,
            "others": dict(list(unusual.items())[1:4]), "total": data.drops.packets},
            "drops", reason, row and row.first_ts)


def _slow_sessions(data: Any) -> Iterator[Finding]:
    """Clients whose sessions took long: many round trips long, the server
    is slow; few, the path is."""
    # a group whose handshakes were resent waited on those (handshake_retries)
    slow = [g for g in data.groups if g.side == "client" and g.closed >= SLOW_SESSIONS
            and (g.duration_p50_ms or 0) >= SLOW_SESSION_MS and g.rtt_p50_us
            and not g.syn_retrans_segs]
    by_cause: dict[str, list] = {"slow_server": [], "slow_path": []}
    for g in slow:
        rtt_ms = g.rtt_p50_us / 1000
        by_cause["slow_server" if g.duration_p50_ms > SERVER_ROUND_TRIPS * rtt_ms
                 else "slow_path"].append(g)
    for cause, groups in by_cause.items():
        if groups:
            g = max(groups, key=lambda g: g.duration_p50_ms)
            yield Finding(cause, PROBLEM, {
                "who": g.label, "remote": g.remote, "p50_ms": g.duration_p50_ms,
                "p95_ms": g.duration_p95_ms, "max_ms": g.duration_max_ms,
                "sessions": g.closed, "rtt_us": g.rtt_p50_us, "groups": len(groups)},
                "groups", g.label)


def _dns(data: Any, status: dict[str, str]) -> Iterator[Finding]:
    dns = data.dns
    if not dns.count:
        if status.get("dns") == "ok":
            yield Finding("no_lookups", values={"not_dns": dns.literal + dns.from_hosts})
        return
    if dns.failed:
        errors: Counter = Counter()
        for h in dns.hosts:
            errors.update({f"{h.name} {e}": n for e, n in h.errors.items()})
        yield Finding("failed_lookups", PROBLEM, {"lookups": dns.failed,
                                                  "worst": errors.most_common(3)}, "problems")
    slowest = max((h for h in dns.hosts if h.max_ms is not None),
                  key=lambda h: h.p95_ms or 0, default=None)
    if dns.slow and slowest:
        yield Finding("slow_lookups", PROBLEM, {
            "lookups": dns.slow, "slow_ms": SLOW_LOOKUP_MS, "name": slowest.name,
            "p95_ms": slowest.p95_ms, "max_ms": slowest.max_ms, "count": slowest.count},
            "hostnames", slowest.name)
    if dns.pending:
        oldest = max((lk for lk in dns.problems if lk.pending), key=lambda lk: lk.latency_ms,
                     default=None)
        yield Finding("pending_lookups", PROBLEM, {
            "lookups": dns.pending, "oldest": oldest.name if oldest else None,
            "oldest_ms": oldest.latency_ms if oldest else None}, "problems", "no answer")


def _wire(data: Any) -> Iterator[Finding]:
    """What the queries on the wire say of the lookups (report/wire.py)."""
    wire = data.dns.wire
    for name, n in sorted(wire.names.items(), key=lambda kv: -kv[1].waited_ms)[:3]:
        if n.lookups and n.nxdomain >= n.lookups and n.queries >= 2 * n.lookups:
            conf = wire.confs.get(n.conf) if n.conf else None
            yield Finding("search_expansion", PROBLEM, {
                "name": name, "queries_per_lookup": round(n.queries / n.lookups, 1),
                "nxdomain_per_lookup": round(n.nxdomain / n.lookups, 1),
                "ndots": conf.ndots if conf else None,
                "search": len(conf.search) if conf else None,
                "waited_ms": n.waited_ms / n.lookups, "queries": n.queries},
                "lookups", name)
    for server, q in sorted(wire.servers.items(), key=lambda kv: -kv[1].unanswered):
        if q.unanswered and not q.answered:
            yield Finding("dead_nameserver", PROBLEM, {
                "server": server, "queries": q.unanswered,
                "waited_ms": q.unanswered_ms / q.unanswered}, "lookups", server)
        if q.servfail:
            yield Finding("servfail", PROBLEM, {"server": server, "queries": q.servfail},
                          "lookups", server)


def _likely(data: Any, status: dict[str, str]) -> Iterator[Finding]:
    """Without wire-level DNS: what the resolver configuration makes likely."""
    if data.dns.wire_linked or status.get("dns") != "ok":
        return
    slow = {h.name: h for h in data.dns.hosts if h.p50_ms is not None}
    for lk in data.dns.timeline:
        conf = data.dns.wire.confs.get(lk.conf) if lk.conf else None
        if conf and conf.search and lk.name.rstrip(".").count(".") < conf.ndots \
                and lk.name in slow:
            yield Finding("likely_expansion", INFO, {
                "name": lk.name, "ndots": conf.ndots, "search": len(conf.search),
                "queries": 2 * (len(conf.search) + 1), "p50_ms": slow[lk.name].p50_ms},
                "lookups", lk.name)
            return


def _newcomers(data: Any) -> Iterator[Finding]:
    new = [p for p in data.who.programs if p.new]
    if new:
        yield Finding("newcomers", values={"count": len(new),
                                           "first": [p.label for p in new[:3]]},
                      table="processes", filter="new")


def _conversations(data: Any) -> Iterator[Finding]:
    if data.conversations is None:
        return
    c = max(data.conversations.rows, key=lambda c: c.retrans_segs, default=None)
    if c and c.retrans_segs:
        yield Finding("conversation_retrans", PROBLEM, {
            "text": c.text, "service": c.service, "segments": c.retrans_segs,
            "connections": c.connections, "client": c.client_retrans_segs or 0,
            "server": c.server_retrans_segs or 0},
            "conversations", f"{c.client_host}:{c.client}")


def _storms(data: Any) -> Iterator[Finding]:
    for cause, values in sustained(data):
        yield Finding(cause, PROBLEM, values, "processes", values["who"])


def findings(data: Any) -> list[Finding]:
    status = data.probe_status
    return ranked([*_traffic(data, status), *_sessions(data, status), *_why_slow(data),
                   *_listeners(data), *_lossy_paths(data), *_drops(data), *_slow_sessions(data),
                   *_conversations(data), *_storms(data),
                   *_dns(data, status), *_wire(data), *_likely(data, status),
                   *_newcomers(data)])
