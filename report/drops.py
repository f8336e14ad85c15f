"""The drops log: packets the kernel dropped, per (host, network namespace,
reason, endpoints) across the window, and per reason; and the drops on a
connection group's path, for its findings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nettrail.headline import Headline
from nettrail.report.labels import endpoint
from nettrail.units import printable

Streams = Iterable[tuple["str | None", Headline, Iterable[list[Any]]]]
KEEP_DROPS = 10_000   # distinct rows summed; more are counted in their reason, not kept
KEEP_REASONS = 256    # the kernel has about 100; more are counted, not kept
TABLE_ROWS = 200
SHOWN_REASONS = 10
# reasons of ordinary life: a port nobody listens on, a drop without a reason given
ORDINARY = ("NOT_SPECIFIED", "NO_SOCKET")


@dataclass
class DropRow:
    host: str | None
    netns: int | None
    reason: str
    protocol: str | None
    source: str | None       # address:port as the packet's IP header says, if kept
    destination: str | None
    packets: int = 0
    skb_bytes: int = 0
    first_ts: float | None = None


@dataclass
class Drops:
    rows: list[DropRow] = field(default_factory=list)     # most packets first, TABLE_ROWS
    row_count: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)  # packets, every line's
    packets: int = 0
    not_kept: int = 0   # lines beyond KEEP_DROPS rows (counted in by_reason only)
    _kept: list[DropRow] = field(default_factory=list)     # every row summed

    def on_path(self, host: str | None, address: str, port: int) -> dict[str, int]:
        """Packets dropped to or from address:port (a connection group's
        remote end, or its clients on its service port), by reason."""
        end = endpoint(address, port)
        found: dict[str, int] = {}
        for row in self._kept:
            if row.host == host and end in (row.source, row.destination):
                found[row.reason] = found.get(row.reason, 0) + row.packets
        return dict(sorted(found.items(), key=lambda kv: -kv[1]))

    def top(self, reason: str) -> DropRow | None:
        """The kept row of `reason` that dropped most."""
        return next((row for row in self._kept if row.reason == reason), None)

    @property
    def reasons_shown(self) -> list[tuple[str, int]]:
        """The reasons that dropped most, for the table's totals line."""
        return sorted(self.by_reason.items(), key=lambda kv: -kv[1])[:SHOWN_REASONS]

    @property
    def unusual(self) -> dict[str, int]:
        """Packets by reason, beyond the ordinary ones, most first."""
        return {r: n for r, n in sorted(self.by_reason.items(), key=lambda kv: -kv[1])
                if r not in ORDINARY}


def _text(value: str | None) -> str | None:
    return None if value is None else printable(value)


def _end(address: str | None, port: int | None) -> str | None:
    if address is None:
        return None
    return printable(endpoint(address, port) if port is not None else address)


def aggregate_drops(streams: Streams) -> Drops:
    drops = Drops()
    by_key: dict[tuple, DropRow] = {}
    for host, headline, blocks in streams:
        for block in blocks:
            headline.add("drops", block)
            for r in block:
                reason = printable(r.reason)
                if reason not in drops.by_reason and len(drops.by_reason) >= KEEP_REASONS:
                    drops.not_kept += 1
                    continue
                drops.by_reason[reason] = drops.by_reason.get(reason, 0) + r.dropped_packets
                drops.packets += r.dropped_packets
                key = (host, r.netns, reason, r.protocol, r.saddr, r.sport, r.daddr, r.dport)
                row = by_key.get(key)
                if row is None:
                    if len(by_key) >= KEEP_DROPS:
                        drops.not_kept += 1
                        continue
                    row = by_key[key] = DropRow(host, r.netns, reason, _text(r.protocol),
                                                _end(r.saddr, r.sport), _end(r.daddr, r.dport))
                row.packets += r.dropped_packets
                row.skb_bytes += r.skb_bytes
                if row.first_ts is None or r.ts < row.first_ts:
                    row.first_ts = r.ts
    drops._kept = sorted(by_key.values(), key=lambda x: -x.packets)
    drops.rows, drops.row_count = drops._kept[:TABLE_ROWS], len(by_key)
    return drops
