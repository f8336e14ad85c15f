"""Bounded logs under storms: past a per-interval budget of lines, the
sessions log's records are counted in summary records (tcplife_summary.jsonl,
described in nettrail/format/logs/sessions.py) instead of written one line
each. Every session is counted once, as a line or in a summary; the summary
itself is bounded (SUMMARY_KEYS records per fold)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nettrail.format.log import IDENTITY
from nettrail.format.logs.sessions import DURATION_BUCKETS, SUMMARY, SUMMARY_KEYS

IDENTITY_NAMES = tuple(f.name for f in IDENTITY)


def duration_bucket(duration_ms: float) -> int:
    """The log2 bucket of a duration in µs (entry 0 also holds those under 1 µs)."""
    return min(max(int(duration_ms * 1000).bit_length() - 1, 0), DURATION_BUCKETS - 1)


@dataclass
class Summary:
    """The sessions of one key in one interval, as they add up."""
    sessions: int = 0
    tx_bytes: int = 0
    rx_bytes: int = 0
    retrans_segs: int = 0
    retrans_sessions: int = 0
    syn_retrans_segs: int = 0
    max_srtt_us: int | None = None
    max_connect_us: int | None = None
    before_window: int = 0
    first_ts: float = float("inf")
    last_ts: float = float("-inf")
    durations: list[int] = field(default_factory=lambda: [0] * DURATION_BUCKETS)

    def add(self, r: dict) -> None:
        self.sessions += 1
        self.tx_bytes += r["tx_bytes"]
        self.rx_bytes += r["rx_bytes"]
        self.retrans_segs += r["retrans_segs"] or 0
        self.retrans_sessions += bool(r["retrans_segs"])
        self.syn_retrans_segs += r.get("syn_retrans_segs") or 0
        self.max_srtt_us = _max(self.max_srtt_us, r["srtt_us"])
        self.max_connect_us = _max(self.max_connect_us, r.get("connect_us"))
        opened_at = r["opened_at"]
        self.first_ts = min(self.first_ts, r["ts"] if opened_at is None else opened_at)
        self.last_ts = max(self.last_ts, r["ts"])
        if opened_at is None:
            self.before_window += 1
        elif r["duration_ms"] is not None:
            self.durations[duration_bucket(r["duration_ms"])] += 1

    def fields(self) -> dict:
        durations = self.durations
        while durations and not durations[-1]:
            durations = durations[:-1]
        return {"sessions": self.sessions, "tx_bytes": self.tx_bytes,
                "rx_bytes": self.rx_bytes, "retrans_segs": self.retrans_segs,
                "retrans_sessions": self.retrans_sessions,
                "syn_retrans_segs": self.syn_retrans_segs, "max_srtt_us": self.max_srtt_us,
                "max_connect_us": self.max_connect_us, "before_window": self.before_window,
                "first_ts": self.first_ts, "last_ts": self.last_ts,
                "durations_log2_us": durations}


def _max(a: int | None, b: int | None) -> int | None:
    return a if b is None else b if a is None else max(a, b)


def service_port(r: dict) -> int:
    """A server's own port, else the remote's (docs/format.md, `port`)."""
    return r["lport"] if r["side"] == "server" else r["rport"]


class SessionBudget:
    """The sessions log's line budget for the current interval, and the
    summaries of the records past it."""

    def __init__(self, interval_lines: int, host: str) -> None:
        self.interval_lines = interval_lines
        # a record folding processes together: no process known (pid null, comm empty)
        self._no_process = {**dict.fromkeys(IDENTITY_NAMES), "host": host, "comm": ""}
        self.lines = 0            # written in the current interval
        self.summarised = 0       # over the capture
        self.summary_lines = 0
        self._summaries: dict[tuple, Summary] = {}

    def new_interval(self) -> None:
        self.lines = 0

    def admit(self, records: list[dict]) -> list[dict]:
        """The records to write one line each; the rest are counted here."""
        room = max(self.interval_lines - self.lines, 0)
        kept = records[:room]
        self.lines += len(kept)
        for r in records[room:]:
            self._summary_of(r).add(r)
        self.summarised += len(records) - len(kept)
        return kept

    def _summary_of(self, r: dict) -> Summary:
        """Its key's summary: past SUMMARY_KEYS distinct keys, remotes are
        folded together; past twice that, processes too."""
        identity = tuple(r.get(name) for name in IDENTITY_NAMES)
        outcome = (r["state"], r["end"])
        keys = ((identity, r["netns"], r["family"], r["side"], r["raddr"], service_port(r)),
                (identity, r["netns"], r["family"], r["side"], None, None),
                (None, None, None, None, None, None))
        for level, key in enumerate(keys):
            found = self._summaries.get(key + outcome)
            if found is not None:
                return found
            if len(self._summaries) < SUMMARY_KEYS * (level + 1) or level == len(keys) - 1:
                return self._summaries.setdefault(key + outcome, Summary())
        raise AssertionError("the last fold always has room")

    def take(self, ts: float, interval: int) -> list[dict]:
        """The summary records of what was counted since the last take."""
        records = []
        for (identity, netns, family, side, raddr, port, state, end), s in \
                self._summaries.items():
            who = self._no_process if identity is None else dict(zip(IDENTITY_NAMES, identity))
            records.append({"kind": SUMMARY.kind, "ts": ts, "interval": interval, **who,
                            "netns": netns,
                            "family": family, "side": side, "raddr": raddr, "port": port,
                            "state": state, "end": end, **s.fields()})
        self._summaries = {}
        self.summary_lines += len(records)
        return records

    def as_json(self) -> dict:
        return {"interval_lines": self.interval_lines, "summarised": self.summarised,
                "summary_lines": self.summary_lines}
