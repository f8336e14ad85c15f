"""The sessions a capture counted past its per-interval line budget
(tcplife_summary.jsonl): each summary record counts its sessions everywhere a
session line counts (totals, ends, the process and connection tables), its
duration sketch in the durations, and its sessions spread evenly over the
timeline buckets of its span. They are not listed one by one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nettrail.format.logs.sessions import FAILED_ENDS
from nettrail.report.bounded import LogSketch
from nettrail.report.labels import group_label, owner_label, process_label, qualified
from nettrail.report.tally import Tally

if TYPE_CHECKING:
    from nettrail.report.sessions import SessionBucket, Sessions, Streams

FOLDED_REMOTE = "*"  # a summary that folds remotes together (capture/budget.py)


@dataclass(frozen=True)
class AsSession:
    """A summary record as the connection table reads a session: its service
    port on the side that names it (an unknown side is guessed from it)."""
    r: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self.r, name)

    @property
    def raddr(self) -> str:
        return self.r.raddr if self.r.raddr is not None else FOLDED_REMOTE

    @property
    def lport(self) -> int:
        return (self.r.port or 0) if self.r.side != "client" else 0

    @property
    def rport(self) -> int:
        return (self.r.port or 0) if self.r.side != "server" else 0


def duration_ms(bucket: int) -> float:
    """The duration a log2 µs bucket stands for: its geometric middle, in ms."""
    return 2 ** (bucket + 0.5) / 1000


def count_summaries(s: Sessions, tally: Tally, streams: Streams) -> None:
    for host, headline, blocks in streams:
        for block in blocks:
            headline.add("sessions", block, summary=True)
            for r in block:
                _count(s, tally, host, r)


def _count(s: Sessions, tally: Tally, host: str | None, r: Any) -> None:
    n, closed = r.sessions, r.state == "closed"
    failed = r.end in FAILED_ENDS
    # parts of its sessions: never more than it has, whatever the file says
    before, retrans = min(r.before_window, n), min(r.retrans_sessions, n)
    s.count += n
    s.summarised += n
    s.closed += n * closed
    s.open += n * (not closed)
    s.before_window += before
    s.ends[r.end or r.state] += n
    s.failed += n * failed
    s.retrans += retrans
    s.tx_bytes += r.tx_bytes
    s.rx_bytes += r.rx_bytes
    session = AsSession(r)
    group = tally.group(host, session, r.first_ts if before < n else None)
    if closed:
        for bucket, times in enumerate(r.durations_log2_us):
            if times:
                s.durations.add(duration_ms(bucket), times)
                group.durations = group.durations or LogSketch()
                group.durations.add(duration_ms(bucket), times)
    proc = tally.process(host, process_label(r.pid, r.comm), group_label(r), r.first_ts)
    proc.weight += n - 1  # process() weighed it as one record
    proc.sessions += n
    proc.failed_sessions += n * failed
    proc.before_window |= before > 0
    group.weight += n - 1
    group.sessions += n
    group.open += n * (not closed)
    group.before_window += before
    group.ends[r.end or r.state] += n
    group.session_rx_bytes += r.rx_bytes
    group.session_tx_bytes += r.tx_bytes
    group.retrans_segs += r.retrans_segs
    group.retrans_sessions += retrans
    group.syn_retrans_segs += r.syn_retrans_segs
    for name in ("max_connect_us", "max_srtt_us"):
        if (value := getattr(r, name)) is not None:
            setattr(group, name, max(getattr(group, name) or 0, value))
    group.first_ts = min(group.first_ts, r.first_ts)
    group.last_ts = max(group.last_ts, r.last_ts)
    _spread(s.buckets, tally, r, qualified(host, owner_label(session)),
            (n - before, n if closed else 0, retrans if closed else 0), failed)


def even_shares(total: int, parts: int) -> Iterable[int]:
    """`total` in `parts` integer shares that add up to it exactly."""
    return (total * (i + 1) // parts - total * i // parts for i in range(parts))


def _spread(buckets: list[SessionBucket], tally: Tally, r: Any, who: str,
            counts: tuple[int, int, int], failed: bool) -> None:
    """Its sessions (opened, closed, retransmitting closed ones) over the
    buckets from its first to its last time, evenly."""
    first = tally.clock.bucket(r.first_ts)
    last = max(tally.clock.bucket(r.last_ts), first)
    parts = last - first + 1
    shares = zip(range(first, last + 1), *(even_shares(total, parts) for total in counts))
    for index, opened, ended, retrans in shares:
        b = buckets[index]
        b.opened += opened
        if opened and (who in b.groups or len(b.groups) < 16):
            b.groups[who] += opened
        b.closed += ended
        b.failed += ended * failed
        b.retrans += retrans
