"""The listeners log: per listening socket, what its accept queue dropped
and how full it was read, across the window (and hosts)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nettrail.headline import Headline
from nettrail.report.labels import endpoint, process_label, qualified
from nettrail.units import printable

Streams = Iterable[tuple["str | None", Headline, Iterable[list[Any]]]]
KEEP_LISTENERS = 10_000  # distinct listeners summed; more are counted, not kept


@dataclass
class Listener:
    host: str | None
    process: str
    netns: int
    address: str         # laddr:port it listens on
    port: int
    listen_drops: int = 0
    max_queue_conns: int = 0   # the fullest reading of its accept queue
    limit_conns: int = 0
    max_syn_queue_conns: int = 0
    intervals_dropping: int = 0
    first_drop_ts: float | None = None

    @property
    def label(self) -> str:
        return qualified(self.host, self.process)


@dataclass
class Listeners:
    rows: list[Listener]
    not_kept: int = 0    # lines of listeners beyond KEEP_LISTENERS (not summed)


def aggregate_listeners(streams: Streams) -> Listeners:
    """One row per (host, netns, socket), most drops first."""
    by_socket: dict[tuple, Listener] = {}
    not_kept = 0  # a count, not the keys: the keys are the unbounded part
    for host, headline, blocks in streams:
        for block in blocks:
            headline.add("listeners", block)
            for r in block:
                key = (host, r.netns, r.ino)
                row = by_socket.get(key)
                if row is None:
                    if len(by_socket) >= KEEP_LISTENERS:
                        not_kept += 1
                        continue
                    row = by_socket[key] = Listener(
                        host, process_label(r.pid, r.comm), r.netns,
                        printable(endpoint(r.laddr, r.lport)), r.lport)
                _count(row, r)
    rows = sorted(by_socket.values(), key=lambda x: (-x.listen_drops, -x.max_queue_conns))
    return Listeners(rows, not_kept)


def _count(row: Listener, r: Any) -> None:
    row.listen_drops += r.listen_drops
    row.max_queue_conns = max(row.max_queue_conns, r.accept_queue_conns)
    row.limit_conns = r.accept_limit_conns
    row.max_syn_queue_conns = max(row.max_syn_queue_conns, r.syn_queue_conns)
    if r.listen_drops:
        row.intervals_dropping += 1
        if row.first_drop_ts is None or r.ts < row.first_drop_ts:
            row.first_drop_ts = r.ts
