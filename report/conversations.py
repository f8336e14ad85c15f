"""Fleet reports: one TCP connection seen from both of its hosts.

Host A's client session and host B's accepted session are the same
connection when A's local address and port are B's remote ones and the other
way round, and their lifetimes overlap (allowing for the hosts' clocks to
differ by MATCH_SKEW_S). Only the addresses the sockets saw are compared:
address translation (NAT, Kubernetes services, load balancers) gives the two
ends different views of the connection, so such sessions stay unmatched.
Loopback addresses never leave a host and are not matched.

Bounded like the rest of the report: at most KEEP_WAITING sessions wait for
their other end (the oldest are given up, and counted), at most KEEP_PER_TUPLE
per 4-tuple, and conversations are summed per (client process, server
process, service) in a HeavyHitters table. Each session costs O(1): a
lookup of its reversed 4-tuple in each of two generations of waiting ends,
and a look at that key's few ends for one whose lifetime overlaps. Giving
up is O(1) too: the old generation is let go whole once the young one holds
half of KEEP_WAITING (no queue of arrivals to keep, whose tuples made the
garbage collector run six times as often). This runs once per session of
every host, so it is written out for speed: the fleet's cost over its
captures' own is this matcher (docs/benchmarks.md, "Fleet reports")"""

from __future__ import annotations

import bisect
import heapq
import math
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from nettrail.format import is_loopback
from nettrail.report.bounded import HeavyHitters
from nettrail.report.labels import endpoint, side_of
from nettrail.units import printable

MATCH_SKEW_S = 1.0          # the hosts' clocks may differ this much (NTP does better)
KEEP_WAITING = 100_000      # sessions waiting for their other end
KEEP_PER_TUPLE = 4          # the same 4-tuple reused within the window
KEEP_CONVERSATIONS = 5_000  # HeavyHitters capacity
CHUNK = 256                 # records of one host merged at a time (by_time)
ADDRESS_CACHE = 4096
_V4_MAPPED = "::ffff:"
_ts = operator.attrgetter("ts")


class End(msgspec.Struct, gc=False):
    """One host's view of a connection (from one tcplife.jsonl line). Up to
    KEEP_WAITING wait at once: plain values, kept out of the garbage
    collector's walks (gc=False; it would walk each one at every full
    collection)."""
    host: str
    process: str
    group: str | None
    side: str
    guessed: bool              # side guessed from port numbers (the capture had none)
    laddr: str                 # this end's address (plain_address) and port
    lport: int
    start: float               # opened (-inf: before the window)
    stop: float                # closed, or the window's end
    tx_bytes: int
    rx_bytes: int
    retrans_segs: int | None
    srtt_us: int | None
    open: bool


@dataclass(slots=True)  # updated once per matched pair: slots are the faster attributes
class ConversationStats:
    weight: float = 0
    error: float = 0
    connections: int = 0
    open: int = 0
    guessed: int = 0           # connections whose sides both ends guessed
    client_tx_bytes: int = 0
    client_rx_bytes: int = 0
    server_tx_bytes: int = 0
    server_rx_bytes: int = 0
    client_retrans_segs: int | None = None
    server_retrans_segs: int | None = None
    client_srtt_us: int | None = None     # the largest of the connections
    server_srtt_us: int | None = None
    first_ts: float = math.inf
    last_ts: float = -math.inf


@dataclass
class Conversation:
    """Connections from one client process to one server process on one
    service endpoint, each matched with both of its ends."""
    client_host: str
    client: str
    client_group: str | None
    server_host: str
    server: str
    server_group: str | None
    service: str               # the server's address:port
    connections: int
    open: int
    guessed: int
    client_tx_bytes: int
    client_rx_bytes: int
    server_tx_bytes: int
    server_rx_bytes: int
    client_retrans_segs: int | None
    server_retrans_segs: int | None
    client_srtt_us: int | None
    server_srtt_us: int | None
    first_ts: float | None
    last_ts: float | None
    approximate: bool

    @property
    def text(self) -> str:
        return f"{self.client_host}:{self.client} → {self.server_host}:{self.server}"

    @property
    def retrans_segs(self) -> int:
        return (self.client_retrans_segs or 0) + (self.server_retrans_segs or 0)


@dataclass
class Conversations:
    rows: list[Conversation]
    count: int                 # distinct (client, server, service), kept or not
    exact: bool
    sessions: int              # sessions looked at
    matched: int               # sessions matched with their other end (two per connection)
    given_up: int              # sessions that waited beyond the bounds

    @property
    def unmatched(self) -> int:
        return self.sessions - self.matched


def plain_address(text: str) -> str:
    """The same IPv4 address whether a v4 or a dual-stack v6 socket saw it."""
    return text[len(_V4_MAPPED):] if text.startswith(_V4_MAPPED) else text


class MatchableAddresses(dict):
    """address text -> plain_address, or None for a loopback address (never
    matched); at most ADDRESS_CACHE kept. A dict, not an lru_cache: a
    lookup is a subscript, two per session."""

    def __missing__(self, text: str) -> str | None:
        address = plain_address(text)
        if len(self) >= ADDRESS_CACHE:
            self.clear()
        self[text] = matchable = None if is_loopback(address) else address
        return matchable


def by_time(logs: Iterable[Iterator[tuple[str | None, list[Any]]]]
            ) -> Iterator[tuple[str | None, list[Any]]]:
    """(host, chunk of records) of every host's log at once, merged by `ts`
    a chunk at a time, by each chunk's first: each log is in (close to) time order, so
    the two ends of a connection, logged by two hosts, arrive close together
    instead of a whole capture apart. A chunk holds at most CHUNK records
    and MATCH_SKEW_S of time (cut by bisection on the log's time order): a
    quiet host's few records never come in far ahead of the busy hosts'
    records of their time."""
    def chunks(log: Iterator[tuple[str | None, list[Any]]]) -> Iterator[tuple[str | None, list]]:
        for host, block in log:
            start = 0
            while start < len(block):
                stop = min(start + CHUNK, len(block))
                until = block[start].ts + MATCH_SKEW_S
                if block[stop - 1].ts > until:  # a quiet stretch: cut where time runs past
                    stop = bisect.bisect_right(block, until, start + 1, stop, key=_ts)
                yield host, block[start:stop]
                start = stop

    return heapq.merge(*map(chunks, logs), key=lambda pair: pair[1][0].ts)


class Matcher:
    """Fed every session of every host; pairs the two ends of a connection."""

    def __init__(self) -> None:
        # ends waiting for their other end, in two generations: a few per
        # 4-tuple, as tuples (nothing here for the collector to walk). New
        # ends join the young; once it holds half of KEEP_WAITING, the old
        # generation's ends are given up and the young becomes the old: the
        # oldest go, at O(1) a session, with no queue of arrivals to keep
        self.young: dict[tuple, tuple[End, ...]] = {}
        self.old: dict[tuple, tuple[End, ...]] = {}
        self.young_count = 0
        self.old_count = 0
        self.addresses = MatchableAddresses()
        self.table: HeavyHitters[ConversationStats] = HeavyHitters(KEEP_CONVERSATIONS,
                                                                  ConversationStats)
        self.sessions = 0
        self.matched = 0
        self.given_up = 0

    @property
    def waiting_count(self) -> int:
        return self.young_count + self.old_count

    def feed(self, host: str, records: Iterable[Any],
             labels: list[tuple[str, str | None]]) -> None:
        """Session records of `host`, each with its (process, group) labels:
        a chunk at a time (by_time's), in one loop: what it touches stays in
        the CPU's caches (record by record, between the report's other work,
        it cost about 5 µs a session; a chunk at a time, about 1.7 in a
        10-capture fleet)."""
        addresses = self.addresses
        for r, (process, group) in zip(records, labels):
            laddr, raddr = addresses[r.laddr], addresses[r.raddr]
            if laddr is None or raddr is None:
                continue
            lport, rport = r.lport, r.rport
            side, guessed = side_of(r)
            start, stop = r.opened_at, r.ts
            if start is None:
                start = -math.inf
            end = End(host, process, group, side, guessed, laddr, lport, start, stop, r.tx_bytes,
                      r.rx_bytes, r.retrans_segs, r.srtt_us, r.state == "open")
            there = (raddr, rport, laddr, lport)
            # the usual end finds its other end in neither generation, or in the young
            if not ((there in self.young and self._match(self.young, there, end))
                    or (there in self.old and self._match(self.old, there, end))):
                self._wait((laddr, lport, raddr, rport), end)
        self.sessions += len(labels)

    def _match(self, generation: dict[tuple, tuple[End, ...]], there: tuple, end: End) -> bool:
        """Pair `end` with the first end waiting at `there` that is its other end."""
        ends = generation[there]
        for other in ends:
            # the same connection: other hosts' lifetimes overlapping, and
            # sides that differ unless one was guessed (both ports ephemeral)
            if (other.host != end.host and (end.guessed or other.guessed or end.side != other.side)
                    and other.start <= end.stop + MATCH_SKEW_S
                    and end.start <= other.stop + MATCH_SKEW_S):
                if len(ends) == 1:  # the usual case: one end waits per 4-tuple
                    del generation[there]
                else:
                    generation[there] = tuple(e for e in ends if e is not other)
                if generation is self.young:
                    self.young_count -= 1
                else:
                    self.old_count -= 1
                # the client: as an end that knows says, else as this one's guess
                self._pair(end, other, (end.side == "client") if not end.guessed or other.guessed
                           else (other.side != "client"))
                return True
        return False

    def _wait(self, key: tuple, end: End) -> None:
        if self.young_count == KEEP_WAITING // 2:  # the old generation waited long enough
            self.given_up += self.old_count
            self.old, self.old_count = self.young, self.young_count
            self.young, self.young_count = {}, 0
        ends = self.young.get(key)
        if ends is None:  # the usual case: one end waits per 4-tuple
            self.young[key] = (end,)
        elif len(ends) == KEEP_PER_TUPLE:
            self.young[key] = ends[1:] + (end,)
            self.given_up += 1
            return
        else:
            self.young[key] = ends + (end,)
        self.young_count += 1

    def _pair(self, a: End, b: End, a_is_client: bool) -> None:
        """Sum one connection into its conversation (written out, not in
        helpers: once per pair of every fleet)."""
        client, server = (a, b) if a_is_client else (b, a)
        s = self.table.get((client.host, client.process, client.group, server.host,
                            server.process, server.group, server.laddr, server.lport))
        self.matched += 2
        s.weight += 1
        s.connections += 1
        s.open += client.open or server.open
        s.guessed += client.guessed and server.guessed
        s.client_tx_bytes += client.tx_bytes
        s.client_rx_bytes += client.rx_bytes
        s.server_tx_bytes += server.tx_bytes
        s.server_rx_bytes += server.rx_bytes
        if client.retrans_segs is not None:
            s.client_retrans_segs = (s.client_retrans_segs or 0) + client.retrans_segs
        if server.retrans_segs is not None:
            s.server_retrans_segs = (s.server_retrans_segs or 0) + server.retrans_segs
        if client.srtt_us is not None and (s.client_srtt_us is None
                                           or client.srtt_us > s.client_srtt_us):
            s.client_srtt_us = client.srtt_us
        if server.srtt_us is not None and (s.server_srtt_us is None
                                           or server.srtt_us > s.server_srtt_us):
            s.server_srtt_us = server.srtt_us
        first = client.start if client.start < server.start else server.start
        if first < s.first_ts:
            s.first_ts = first
        last = client.stop if client.stop > server.stop else server.stop
        if last > s.last_ts:
            s.last_ts = last

    def result(self, rows: int) -> Conversations:
        top = self.table.top(rows, key=lambda s: (
            -(s.client_tx_bytes + s.client_rx_bytes + s.server_tx_bytes + s.server_rx_bytes),
            -s.connections))
        return Conversations([_row(key, s) for key, s in top],
                             len(self.table) + self.table.dropped, self.table.exact,
                             self.sessions, self.matched, self.given_up)


def _row(key: object, s: ConversationStats) -> Conversation:
    client_host, client, client_group, server_host, server, server_group, laddr, lport = key  # type: ignore[misc]
    return Conversation(
        client_host, client, client_group, server_host, server, server_group,
        printable(endpoint(laddr, lport)),
        s.connections, s.open, s.guessed, s.client_tx_bytes, s.client_rx_bytes, s.server_tx_bytes,
        s.server_rx_bytes, s.client_retrans_segs, s.server_retrans_segs, s.client_srtt_us,
        s.server_srtt_us, s.first_ts if math.isfinite(s.first_ts) else None,
        s.last_ts if math.isfinite(s.last_ts) else None, bool(s.error))
