"""Naming connections by the lookups that returned their addresses: which
names each owner resolved to each address, and when. The DNS log fills a
Resolutions; the other logs' aggregations get its `names_of` as an argument
(they never depend on the order in which logs are read)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nettrail.report.labels import Owner, naming_owner

KEEP_RESOLUTIONS = 100_000  # (owner, address) pairs remembered
NAMED_WITHIN_S = 600.0      # a lookup names an address for connections this soon after

# names_of(record, host, connected): names its owner resolved to its remote
# address shortly before `connected` (None: opened before the window)
NamesOf = Callable[[Any, "str | None", "float | None"], list[str]]


class Resolutions:
    """The newest few names per (owner, address); the oldest pairs are
    forgotten beyond KEEP_RESOLUTIONS."""

    def __init__(self) -> None:
        self.pairs: dict[tuple[Owner, str], list[tuple[float, str]]] = {}

    def add(self, owner: Owner, ts: float, name: str, addresses: list[str]) -> None:
        for address in addresses:
            key = (owner, address)
            entries = self.pairs.pop(key, [])
            if len(self.pairs) >= KEEP_RESOLUTIONS:
                del self.pairs[next(iter(self.pairs))]
            self.pairs[key] = [e for e in entries if e[1] != name][-2:] + [(ts, name)]

    def names_of(self, r: Any, host: str | None, connected: float | None) -> list[str]:
        if connected is None:
            return []
        entries = self.pairs.get((naming_owner(r, host), r.raddr), ())
        return [name for ts, name in entries
                if connected - NAMED_WITHIN_S <= ts <= connected + 0.001]
