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
process, service) in a HeavyHitters table. Each session costs O(1): one
lookup of its reversed 4-tuple, a look at that key's few waiting ends for one
whose lifetime overlaps, and the oldest waiting end given up from the front of
a queue (docs/benchmarks.md, "Fleet reports")."""

from __future__ import annotations

import functools
import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from nettrail.format import is_loopback
from nettrail.report.bounded import HeavyHitters
from nettrail.report.labels import endpoint
from nettrail.units import printable

MATCH_SKEW_S = 1.0          # the hosts' clocks may differ this much (NTP does better)
KEEP_WAITING = 100_000      # sessions waiting for their other end
KEEP_PER_TUPLE = 4          # the same 4-tuple reused within the window
KEEP_CONVERSATIONS = 5_000  # HeavyHitters capacity
CHUNK = 256                 # records of one host merged at a time (by_time)
ADDRESS_CACHE = 4096
_V4_MAPPED = "::ffff:"


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


@functools.lru_cache(maxsize=ADDRESS_CACHE)
def _matchable(text: str) -> str | None:
    """plain_address, or None for a loopback address (never matched)."""
    address = plain_address(text)
    return None if is_loopback(address) else address


@functools.lru_cache(maxsize=ADDRESS_CACHE)
def _local_label(address: str, port: int) -> str:
    """A server's end as a conversation names it (its service)."""
    return printable(endpoint(address, port))


def by_time(logs: Iterable[Iterator[tuple[str | None, list[Any]]]]
            ) -> Iterator[tuple[str | None, Any]]:
    """(host, record) of every host's log at once, merged by `ts` a chunk at
    a time, by each chunk's first: each log is in (close to) time order, so
    the two ends of a connection, logged by two hosts, arrive close together
    instead of a whole capture apart. A chunk holds at most CHUNK records
    and MATCH_SKEW_S of time: a quiet host's few records never come in far
    ahead of the busy hosts' records of their time."""
    def chunks(log: Iterator[tuple[str | None, list[Any]]]) -> Iterator[tuple[str | None, list]]:
        for host, block in log:
            start = 0
            for i in range(1, len(block) + 1):
                if i == len(block) or i - start == CHUNK or \
                        block[i].ts - block[start].ts > MATCH_SKEW_S:
                    yield host, block[start:i]
                    start = i

    for host, chunk in heapq.merge(*map(chunks, logs), key=lambda pair: pair[1][0].ts):
        for r in chunk:
            yield host, r


def _same_connection(a: End, b: End) -> bool:
    """A guessed side may be wrong (both ends' ports ephemeral): only two
    known sides must differ."""
    sides_fit = a.guessed or b.guessed or a.side != b.side
    return (a.host != b.host and sides_fit
            and a.start <= b.stop + MATCH_SKEW_S and b.start <= a.stop + MATCH_SKEW_S)


def _client_first(a: End, b: End) -> tuple[End, End]:
    """(client, server): as an end that knows says, else as a's guess."""
    knows = b if a.guessed and not b.guessed else a
    return (a, b) if (knows is a) == (knows.side == "client") else (b, a)


def _add(total: int | None, value: int | None) -> int | None:
    return total if value is None else (total or 0) + value


def _largest(known: int | None, value: int | None) -> int | None:
    return known if value is None else max(known or 0, value)


class Matcher:
    """Fed every session of every host; pairs the two ends of a connection."""

    def __init__(self, make_end: Callable[[str, Any, str, str | None], End]) -> None:
        """`make_end(host, record, process, group)`: one end of a connection,
        as the report names it (its process and group labels given)."""
        self.make_end = make_end
        # a few ends per 4-tuple, as tuples: nothing here for the collector to walk
        self.waiting: dict[tuple, tuple[End, ...]] = {}
        self.waiting_count = 0
        # every end that was made to wait, oldest first; those matched or
        # given up since are skipped when the oldest is given up, and swept
        # out now and then
        self.arrivals: deque[tuple[tuple, End]] = deque()
        self.table: HeavyHitters[ConversationStats] = HeavyHitters(KEEP_CONVERSATIONS,
                                                                  ConversationStats)
        self.sessions = 0
        self.matched = 0
        self.given_up = 0

    def feed(self, host: str, r: Any, process: str, group: str | None) -> None:
        """One session of `host`, by `process` in `group`; its End is made
        only if it can be matched (not on loopback)."""
        self.sessions += 1
        laddr, raddr = _matchable(r.laddr), _matchable(r.raddr)
        if laddr is None or raddr is None:
            return
        end = self.make_end(host, r, process, group)
        there = (raddr, r.rport, laddr, r.lport)
        for other in self.waiting.get(there, ()):
            if _same_connection(other, end):
                self._unwait(there, other)
                self._pair(end, other)
                return
        self._wait((laddr, r.lport, raddr, r.rport), end)

    def _wait(self, key: tuple, end: End) -> None:
        ends = self.waiting.get(key, ())
        if len(ends) == KEEP_PER_TUPLE:
            ends = ends[1:]
            self.given_up += 1
            self.waiting_count -= 1
        self.waiting[key] = ends + (end,)
        self.waiting_count += 1
        self.arrivals.append((key, end))
        if self.waiting_count > KEEP_WAITING:
            self._give_up_oldest()
        if len(self.arrivals) > 2 * KEEP_WAITING:  # amortised O(1): half of it goes
            self.arrivals = deque(a for a in self.arrivals if self._is_waiting(*a))

    def _is_waiting(self, key: tuple, end: End) -> bool:
        return any(e is end for e in self.waiting.get(key, ()))

    def _give_up_oldest(self) -> None:
        while self.arrivals:
            key, end = self.arrivals.popleft()
            if self._is_waiting(key, end):
                self._unwait(key, end)
                self.given_up += 1
                return

    def _unwait(self, key: tuple, end: End) -> None:
        ends = self.waiting[key]
        self.waiting_count -= 1
        if len(ends) == 1:  # the usual case: one end waits per 4-tuple
            del self.waiting[key]
        else:
            self.waiting[key] = tuple(e for e in ends if e is not end)

    def _pair(self, a: End, b: End) -> None:
        client, server = _client_first(a, b)
        s = self.table.get((client.host, client.process, client.group, server.host,
                            server.process, server.group,
                            _local_label(server.laddr, server.lport)))
        self.matched += 2
        s.weight += 1
        s.connections += 1
        s.open += client.open or server.open
        s.guessed += client.guessed and server.guessed
        s.client_tx_bytes += client.tx_bytes
        s.client_rx_bytes += client.rx_bytes
        s.server_tx_bytes += server.tx_bytes
        s.server_rx_bytes += server.rx_bytes
        s.client_retrans_segs = _add(s.client_retrans_segs, client.retrans_segs)
        s.server_retrans_segs = _add(s.server_retrans_segs, server.retrans_segs)
        s.client_srtt_us = _largest(s.client_srtt_us, client.srtt_us)
        s.server_srtt_us = _largest(s.server_srtt_us, server.srtt_us)
        s.first_ts = min(s.first_ts, client.start, server.start)
        s.last_ts = max(s.last_ts, client.stop, server.stop)

    def result(self, rows: int) -> Conversations:
        top = self.table.top(rows, key=lambda s: (
            -(s.client_tx_bytes + s.client_rx_bytes + s.server_tx_bytes + s.server_rx_bytes),
            -s.connections))
        return Conversations([_row(key, s) for key, s in top],
                             len(self.table) + self.table.dropped, self.table.exact,
                             self.sessions, self.matched, self.given_up)


def _row(key: object, s: ConversationStats) -> Conversation:
    client_host, client, client_group, server_host, server, server_group, service = key  # type: ignore[misc]
    return Conversation(
        client_host, client, client_group, server_host, server, server_group, service,
        s.connections, s.open, s.guessed, s.client_tx_bytes, s.client_rx_bytes, s.server_tx_bytes,
        s.server_rx_bytes, s.client_retrans_segs, s.server_retrans_segs, s.client_srtt_us,
        s.server_srtt_us, s.first_ts if math.isfinite(s.first_ts) else None,
        s.last_ts if math.isfinite(s.last_ts) else None, bool(s.error))
