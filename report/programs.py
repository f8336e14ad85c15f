"""Who did it, one level up from the process: programs (service or container,
then command; the PIDs one click down), destinations (remote endpoint and
service port, whatever process used them), and the bytes split into network
and within this host (loopback, own addresses). Read off the bounded tables (report/tally.py) once, after every
log is summed: as exact as they are."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from nettrail.format.logs.sessions import FAILED_ENDS
from nettrail.report.labels import qualified
from nettrail.report.tally import TABLE_ROWS, ProcessRow, Tally

PIDS_SHOWN = 50            # processes listed under a program (the rest counted)
NAMED_DESTINATIONS = 3     # destinations named with a program (the top talker)


@dataclass
class Program:
    host: str | None
    group: str | None            # systemd service or container, if known
    command: str
    processes: list[ProcessRow]  # busiest first, at most PIDS_SHOWN
    process_count: int
    rx_bytes: int = 0
    tx_bytes: int = 0
    peak_bps: float = 0.0        # the busiest of its processes
    sessions: int = 0
    failed_sessions: int = 0
    lookups: int = 0
    first_ts: float | None = None
    first_per_interval: bool = False  # first_ts is an interval's start (ProcessRow)
    new: bool = True             # every process of it was first seen mid-window
    destinations: list[tuple[str, int]] = field(default_factory=list)  # (where, bytes)

    @property
    def label(self) -> str:
        return qualified(self.host, self.command)


@dataclass
class Destination:
    """Sessions to one remote endpoint (client side) or on one of our ports
    from one address (server side), over every process."""
    host: str | None
    side: str
    remote: str
    port: int
    sessions: int = 0
    ends: Counter = field(default_factory=Counter)
    rx_bytes: int = 0
    tx_bytes: int = 0
    programs: Counter = field(default_factory=Counter)  # program label: sessions
    local: bool = False          # the remote end is this host too (loopback, own address)

    @property
    def failed(self) -> int:
        return sum(self.ends[e] for e in FAILED_ENDS)

    @property
    def other_end_counted(self) -> bool:
        """A server's clients on this host: their failures are counted at the client end."""
        return self.side == "server" and self.local

    @property
    def text(self) -> str:
        """As findings name it: `10.0.0.5:443`, or a server's `port 443 from 10.0.0.7`."""
        return self.remote if self.side == "client" else f"port {self.port} from {self.remote}"


@dataclass
class Volume:
    """Bytes moved in the window. A connection within this host (loopback, or
    between its own addresses and namespaces) is seen at both of its ends (one's
    sent bytes are the other's received ones): counted once, as sent."""
    network_rx_bytes: int = 0
    network_tx_bytes: int = 0
    local_bytes: int = 0


@dataclass
class Who:
    programs: list[Program]
    program_count: int
    destinations: list[Destination]  # most sessions first
    volume: Volume


def command_of(label: str) -> str:
    """`curl (4810)` → `curl` (labels.process_label; the pid is the last part)."""
    command, _, pid = label.rpartition(" (")
    return command if command and pid.endswith(")") else label


Local = Callable[[str | None, str], bool]


def who(tally: Tally) -> Who:
    def local(host: str | None, remote: str) -> bool:
        return tally.own.kind(host, remote) is not None
    programs, count = _programs(tally)
    moved: dict[tuple, Counter] = {}
    destinations = _destinations(tally, moved, local)
    for p in programs:
        p.destinations = moved.get((p.host, p.command), Counter()).most_common(
            NAMED_DESTINATIONS)
    return Who(programs, count, destinations, _volume(destinations))


def _programs(tally: Tally) -> tuple[list[Program], int]:
    found: dict[tuple, Program] = {}
    members: dict[tuple, list[ProcessRow]] = {}
    for row in tally.process_rows(None):
        key = (row.host, row.group, command_of(row.process))
        p = found.get(key)
        if p is None:
            p = found[key] = Program(row.host, row.group, key[2], [], 0)
            members[key] = []
        p.process_count += 1
        p.rx_bytes += row.rx_bytes
        p.tx_bytes += row.tx_bytes
        p.peak_bps = max(p.peak_bps, row.peak_bps)
        p.sessions += row.sessions
        p.failed_sessions += row.failed_sessions
        p.lookups += row.lookups
        if row.first_ts is not None:
            first = p.first_ts if p.first_ts is not None else math.inf
            if row.first_ts <= first:  # a tie: a record's own time says more
                p.first_per_interval = row.first_per_interval and (
                    row.first_ts < first or p.first_per_interval)
                p.first_ts = row.first_ts
        p.new &= row.new
        if len(members[key]) < PIDS_SHOWN:
            members[key].append(row)
    for key, p in found.items():
        p.processes = members[key]
    ranked = sorted(found.values(), key=lambda p: (-(p.rx_bytes + p.tx_bytes), -p.sessions,
                                                   -p.lookups, p.label))
    return ranked[:TABLE_ROWS], len(found)


def _destinations(tally: Tally, moved: dict[tuple, Counter], local: Local
                  ) -> list[Destination]:
    """Every destination; `moved` gets each command's bytes per destination."""
    found: dict[tuple, Destination] = {}
    for (host, process, _group, side, remote, port), s in tally.groups.top():  # type: ignore[misc]
        d = found.get((host, side, remote, port))
        if d is None:
            d = found[(host, side, remote, port)] = Destination(
                host, side, remote, port, local=local(host, remote))
        d.sessions += s.sessions
        d.ends.update(s.ends)
        d.rx_bytes += s.rx_bytes
        d.tx_bytes += s.tx_bytes
        d.programs[qualified(host, command_of(process))] += s.sessions
        if s.rx_bytes + s.tx_bytes:
            moved.setdefault((host, command_of(process)), Counter())[d.text] += (
                s.rx_bytes + s.tx_bytes)
    return sorted(found.values(), key=lambda d: (-d.sessions, -(d.rx_bytes + d.tx_bytes)))


def _volume(destinations: list[Destination]) -> Volume:
    """Bytes to the network, and within the host (seen at both ends: sent, once)."""
    v = Volume()
    for d in destinations:
        if d.local:
            v.local_bytes += d.tx_bytes
        else:
            v.network_rx_bytes += d.rx_bytes
            v.network_tx_bytes += d.tx_bytes
    return v
