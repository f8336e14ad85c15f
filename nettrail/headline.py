"""The headline numbers of a capture, computed in one place: fed the records
as the capture writes them (live view, closing line, meta.json's `summary`)
or as the report reads them (captures without a summary).

Bounded whatever the logs hold: counters and one slowest lookup, no lists."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Headline:
    rx_bytes: int = 0
    tx_bytes: int = 0
    sessions: int = 0
    failed_sessions: int = 0   # refused, reset or timed out
    lookups: int = 0
    failed_lookups: int = 0
    pending_lookups: int = 0
    slowest_name: str | None = None
    slowest_ms: float | None = None

    def add(self, probe: str, records: Iterable[dict]) -> None:
        """Count records of one probe's log (docs/format.md shapes)."""
        if probe == "bandwidth":
            for r in records:
                self.rx_bytes += r["rx_bytes"]
                self.tx_bytes += r["tx_bytes"]
        elif probe == "sessions":
            for r in records:
                self.sessions += 1
                self.failed_sessions += r.get("end") in ("reset", "refused", "timeout")
        elif probe == "dns":
            for r in records:
                self._add_lookup(r)

    def _add_lookup(self, r: dict) -> None:
        if r.get("call_ts") is not None:
            return  # a query its libc call sent: that call is the lookup
        self.lookups += 1
        self.pending_lookups += r["pending"]
        self.failed_lookups += not r["ok"] and not r["pending"]
        if r.get("resolved_by") in ("literal", "hosts"):
            return  # not a name server's answer: no latency worth naming
        if self.slowest_ms is None or r["latency_ms"] > self.slowest_ms:
            self.slowest_name, self.slowest_ms = r["name"], r["latency_ms"]

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Headline | None:
        """A summary as meta.json stores it; None if it is not one."""
        if not isinstance(data, dict):
            return None
        headline = cls()
        for f in dataclasses.fields(cls):
            value = data.get(f.name, getattr(headline, f.name))
            wanted = str if f.name == "slowest_name" else (int, float)
            if not (value is None and f.default is None) and (
                    isinstance(value, bool) or not isinstance(value, wanted)):
                return None
            setattr(headline, f.name, value)
        return headline
