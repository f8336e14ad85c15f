"""The netstat log: each network namespace's TCP and UDP counters (nstat's
names), summed across the window per (host, namespace)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nettrail.format.logs.netstat import MAX_COUNTERS
from nettrail.headline import Headline
from nettrail.units import printable

Streams = Iterable[tuple["str | None", Headline, Iterable[list[Any]]]]
KEEP_NAMESPACES = 10_000  # (host, namespace) pairs summed; more are counted, not kept
TABLE_ROWS = 200


@dataclass
class NamespaceCounters:
    host: str | None
    netns: int
    counters: dict[str, int] = field(default_factory=dict)  # nstat name: added in the window

    @property
    def moved(self) -> int:
        return sum(self.counters.values())


@dataclass
class Netstat:
    rows: list[NamespaceCounters] = field(default_factory=list)  # most moved first
    row_count: int = 0
    not_kept: int = 0     # lines of namespaces beyond KEEP_NAMESPACES
    counters_not_kept: int = 0  # a namespace's counters beyond MAX_COUNTERS (not nstat's)
    _by_key: dict[tuple, NamespaceCounters] = field(default_factory=dict)

    def of(self, host: str | None, netns: int, name: str) -> int | None:
        """What a namespace's counter added in the window; None if not read."""
        row = self._by_key.get((host, netns))
        return None if row is None else row.counters.get(name, 0)


def aggregate_netstat(streams: Streams) -> Netstat:
    netstat = Netstat()
    for host, headline, blocks in streams:
        for block in blocks:
            headline.add("netstat", block)
            for r in block:
                row = netstat._by_key.get((host, r.netns))
                if row is None:
                    if len(netstat._by_key) >= KEEP_NAMESPACES:
                        netstat.not_kept += 1
                        continue
                    row = netstat._by_key[(host, r.netns)] = NamespaceCounters(host, r.netns)
                for name, added in r.counters.items():
                    name = printable(name)
                    if name in row.counters or len(row.counters) < MAX_COUNTERS:
                        row.counters[name] = row.counters.get(name, 0) + added
                    else:
                        netstat.counters_not_kept += 1
    rows = sorted(netstat._by_key.values(), key=lambda x: -x.moved)
    netstat.rows, netstat.row_count = rows[:TABLE_ROWS], len(rows)
    return netstat
