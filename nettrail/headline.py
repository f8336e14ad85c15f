"""The headline numbers of a capture, defined once: each log's description
says what its records add (nettrail/format/), and every place that shows a
headline number (live view, closing line, `--summary-json`, meta.json's
`summary`, the snapshot index and the report) counts it with this class.

Bounded whatever the logs hold: counters and one slowest lookup, no lists."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Headline:
    rx_bytes: int = 0
    tx_bytes: int = 0
    sessions: int = 0
    failed_sessions: int = 0   # refused, reset or timed out (a loopback one once, not per end)
    summarised_sessions: int = 0  # of `sessions`: counted in a summary, past the line budget
    lookups: int = 0           # name lookups that asked DNS (or may have)
    failed_lookups: int = 0
    pending_lookups: int = 0
    literal_lookups: int = 0   # an IP literal passed to a lookup function: nothing looked up
    hosts_lookups: int = 0     # answered without a query leaving the process (hosts file)
    slowest_name: str | None = None  # the slowest answered lookup that asked DNS
    slowest_ms: float | None = None
    # the window's real length (an interrupted one is shorter than asked):
    # rates divide by it; set by the capture, None in captures made before it
    elapsed_s: float | None = None

    def add(self, probe: str, records: Sequence, summary: bool = False) -> None:
        """Count records of one probe's log (`summary`: of its summary log):
        dicts as the capture writes them, or the reader's records."""
        if not records:
            return
        from nettrail.format import LOGS  # the log descriptions import nothing from here
        log = LOGS[probe].summary if summary else LOGS[probe]
        assert log is not None
        log.count(self, records, operator.itemgetter if isinstance(records[0], dict)
                  else operator.attrgetter)

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Headline | None:
        """A summary as meta.json stores it (fields added later default);
        None if it is not one."""
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


# Fields a summary written before they existed lacks (read as 0)
ADDED_LATER = ("literal_lookups", "hosts_lookups", "elapsed_s", "summarised_sessions")
