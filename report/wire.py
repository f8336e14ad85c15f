"""DNS on the wire, per libc lookup (`--probes +wire`): how many queries each
lookup sent, how many came back NXDOMAIN or SERVFAIL or went unanswered,
the time spent before the answer, and which servers never answered; with
the resolver configuration each process used (meta.json's
probes.dns.resolv_confs), the numbers the DNS findings name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nettrail.units import human_ms, printable

KEEP_SERVERS = 256
KEEP_NAMES = 2_000
FAILED_ANSWERS = ("NXDOMAIN", "SERVFAIL", "TIMEOUT")


@dataclass(frozen=True, slots=True)
class Query:
    ts: float
    qtype: str | None
    server: str
    error: str | None
    latency_ms: float
    pending: bool

    @property
    def note(self) -> str:
        """How the tables list it: "A 10.0.0.2:53 NXDOMAIN 3.1 ms"."""
        return " ".join([self.qtype or "?", self.server,
                         "pending" if self.pending else self.error or "ok",
                         human_ms(self.latency_ms)])


def query_of(r: Any) -> Query:
    return Query(r.ts, printable(r.qtype) if r.qtype else None, printable(r.server or "?"),
                 printable(r.error) if r.error else None, r.latency_ms, r.pending)


@dataclass
class NameQueries:
    """The queries the lookups of one name sent."""
    lookups: int = 0          # lookups that sent at least one query
    queries: int = 0
    nxdomain: int = 0
    servfail: int = 0
    unanswered: int = 0
    waited_ms: float = 0.0    # summed over lookups: from the call to its last failed query's end
    conf: tuple | None = None  # (host, resolv_conf id) of its latest lookup


@dataclass
class ServerQueries:
    queries: int = 0
    answered: int = 0
    unanswered: int = 0
    servfail: int = 0
    unanswered_ms: float = 0.0  # summed: how long clients waited for what never came


@dataclass
class ResolvConf:
    nameservers: list[str]
    search: list[str]
    ndots: int
    timeout_s: float


@dataclass
class Wire:
    names: dict[str, NameQueries] = field(default_factory=dict)
    servers: dict[str, ServerQueries] = field(default_factory=dict)
    confs: dict[tuple, ResolvConf] = field(default_factory=dict)  # (host, id)

    def joined(self, call: Any, q: Query) -> None:
        """A query `call` (a report.dns.Lookup) sent."""
        name = self.names.get(call.name)
        if name is None:
            if len(self.names) >= KEEP_NAMES:
                return
            name = self.names[call.name] = NameQueries()
        if not call.queries:
            name.lookups += 1
        call.queries += 1
        name.queries += 1
        name.nxdomain += q.error == "NXDOMAIN"
        name.servfail += q.error == "SERVFAIL"
        name.unanswered += q.error == "TIMEOUT"
        name.conf = call.conf
        if q.error in FAILED_ANSWERS:  # time lost before this lookup's answer
            waited = (q.ts - call.ts) * 1000 + q.latency_ms
            if waited > call.waited_ms:
                name.waited_ms += waited - call.waited_ms
                call.waited_ms = waited
        self._served(q)

    def _served(self, q: Query) -> None:
        server = self.servers.get(q.server)
        if server is None:
            if len(self.servers) >= KEEP_SERVERS:
                return
            server = self.servers[q.server] = ServerQueries()
        server.queries += 1
        if q.error == "TIMEOUT":
            server.unanswered += 1
            server.unanswered_ms += q.latency_ms
        elif not q.pending:
            server.answered += 1
            server.servfail += q.error == "SERVFAIL"

    def add_confs(self, host: str | None, status: dict) -> None:
        """probes.dns.resolv_confs of one capture (untrusted: shapes checked)."""
        for conf in status.get("resolv_confs") or ():
            if not isinstance(conf, dict) or type(conf.get("id")) is not int:
                continue
            servers = [printable(s) for s in conf.get("nameservers") or () if isinstance(s, str)]
            search = [printable(s) for s in conf.get("search") or () if isinstance(s, str)]
            ndots, timeout_s = conf.get("ndots"), conf.get("timeout_s")
            self.confs[(host, conf["id"])] = ResolvConf(
                servers[:3], search[:8], ndots if type(ndots) is int else 1,
                float(timeout_s) if type(timeout_s) in (int, float) else 5.0)
