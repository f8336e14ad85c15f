"""netstat probe: each network namespace's TCP and UDP counters, the ones
`nstat` shows, read from procfs once per interval; no BPF program. A
namespace is read through one of its processes (/proc/PID/net/...), opened
as a directory fd that is checked to be in that namespace before its files
are read through it."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping

from nettrail.capture.events import RecordContext
from nettrail.capture.loader import Probe, ProbeStatus
from nettrail.capture.preflight import CapNeed

HOOK = "procfs: /proc/PID/net/snmp and netstat, one process per network namespace"
# nstat's names (section + counter): what says why TCP or UDP was slow
COUNTERS = frozenset({
    "TcpRetransSegs", "TcpOutSegs", "TcpInErrs", "TcpOutRsts", "TcpAttemptFails",
    "TcpEstabResets", "UdpInErrors", "UdpRcvbufErrors", "UdpNoPorts",
    "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPTimeouts", "TcpExtTCPSynRetrans",
    "TcpExtTCPLostRetransmit", "TcpExtTCPAbortOnTimeout", "TcpExtTCPAbortOnData",
    "TcpExtTCPBacklogDrop", "TcpExtTCPRcvQDrop", "TcpExtTCPZeroWindowDrop",
    "TcpExtTCPSpuriousRTOs", "TcpExtTCPOFODrop"})
FILES = ("net/snmp", "net/netstat")
MAX_FILE_BYTES = 64 << 10   # each file is a few KiB; more is not procfs's
MAX_NAMESPACES = 4096

Counts = dict[str, int]


def parse_counters(text: str) -> Counts:
    """procfs's `Section: names` / `Section: values` line pairs as nstat
    names (`TcpExtListenOverflows`), the ones in COUNTERS."""
    found: Counts = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        section, _, names = names.partition(":")
        for name, value in zip(names.split(), values.partition(":")[2].split()):
            if section + name in COUNTERS and value.isdigit():
                found[section + name] = int(value)
    return found


def namespaces(proc: str = "/proc", limit: int = MAX_NAMESPACES,
               known: Collection[int] = ()) -> tuple[dict[int, int], int]:
    """A process in each network namespace (netns inode: the lowest pid seen
    in it), the `known` ones first, and how many past `limit` were left out
    (new namespaces cannot push out those already counted)."""
    lowest: dict[int, int] = {}
    for pid in sorted(int(p) for p in os.listdir(proc) if p.isdigit()):
        try:
            lowest.setdefault(os.stat(f"{proc}/{pid}/ns/net").st_ino, pid)
        except OSError:  # gone meanwhile, or a kernel thread's
            continue
    order = sorted(lowest, key=lambda netns: netns not in known)  # stable: known first
    return {netns: lowest[netns] for netns in order[:limit]}, max(len(order) - limit, 0)


def read_namespace(pid: int, netns: int, proc: str = "/proc") -> Counts | None:
    """The counters of `netns` as process `pid` sees them; None if it is
    gone or no longer in that namespace."""
    try:
        fd = os.open(f"{proc}/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if os.stat("ns/net", dir_fd=fd).st_ino != netns:
            return None
        counts: Counts = {}
        for name in FILES:
            counts.update(parse_counters(_read_bounded(name, fd)))
        # a file is the namespace's its process was in when it was opened: one
        # that moved meanwhile (a user's own, through setns) is not counted
        return counts if os.stat("ns/net", dir_fd=fd).st_ino == netns else None
    except OSError:  # it left meanwhile (ESRCH, ENOENT), or not procfs's: not read
        return None
    finally:
        os.close(fd)


def _read_bounded(name: str, dir_fd: int) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        return os.read(fd, MAX_FILE_BYTES).decode("ascii", "replace")
    finally:
        os.close(fd)


def changes(before: Mapping[int, Counts], now: Mapping[int, Counts]
            ) -> Iterator[tuple[int, Counts]]:
    """Per namespace, the counters that moved since `before`. A namespace
    first seen now, or whose counters went back (a new namespace with a
    reused inode), is a baseline only."""
    for netns, counts in now.items():
        was = before.get(netns)
        if was is None or any(counts[k] < was.get(k, 0) for k in counts):
            continue
        moved = {k: v - was.get(k, 0) for k, v in sorted(counts.items()) if v != was.get(k, 0)}
        if moved:
            yield netns, moved


class NetstatProbe(Probe):
    name = "netstat"
    capabilities: tuple[CapNeed, ...] = ()  # reads procfs as any root process may

    def __init__(self, ctx: RecordContext, pids: tuple[int, ...] = ()) -> None:
        super().__init__(ctx, pids)
        self._counts: dict[int, Counts] = {}
        self._started = False
        self.left_out = 0

    def _read(self) -> dict[int, Counts]:
        """Every namespace's counters; one whose process left before it was
        read keeps its last reading, one that is gone is forgotten."""
        found, left_out = namespaces(known=self._counts)
        self.left_out += left_out
        read = {netns: counts for netns, pid in found.items()
                if (counts := read_namespace(pid, netns)) is not None}
        kept = {netns: self._counts[netns] for netns in found if netns in self._counts}
        return {**kept, **read}

    def start(self, started: Mapping[str, Probe]) -> None:
        """A first reading: the baseline of every namespace."""
        try:
            self._counts = self._read()
        except OSError as exc:
            self.status = ProbeStatus("failed", error=f"procfs: {exc.strerror}")
            return
        self._started = True
        self.status = ProbeStatus("ok", hook=HOOK)
        self.interval_end()  # the first interval starts now

    @property
    def running(self) -> bool:
        return self._started

    def interval_records(self, interval: int, last: bool) -> list[dict]:
        now = self._read()
        ts, length_s = self.interval_end()
        records = [{"kind": "netstat", "ts": ts, "interval": interval, "interval_s": length_s,
                    "host": self.ctx.host, "netns": netns, "counters": moved}
                   for netns, moved in changes(self._counts, now)]
        self._counts = now
        return records

    def lost_events(self) -> dict[str, int]:
        """Namespace readings left out past MAX_NAMESPACES, over the window."""
        return {"namespaces_past_limit": self.left_out} if self._started else {}

    def close(self) -> None:
        self._started = False
