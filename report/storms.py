"""Storms: connection and lookup rates sustained over the window, whoever
makes them. Bursts (report/sessions.py) are buckets well above the usual
one; a storm that lasts the whole window is the usual one, so it is found
here by its absolute rate instead (thresholds in docs/report.md)."""

from __future__ import annotations

from collections import Counter
from typing import Any

STORM_SESSIONS_PER_S = 200   # sessions opened per second, over the whole window
STORM_LOOKUPS_PER_S = 100    # lookups per second, over the whole window
MIN_WINDOW_S = 1.0           # a shorter window says nothing of a rate


def sustained(data: Any) -> list[tuple[str, dict[str, Any]]]:
    """(cause, values) of each storm: the rate over the window, how much of
    the window ran at that rate or more, and the busiest program and
    destination with their own rates."""
    clock = data.clock
    seconds = clock.end - clock.start
    if seconds < MIN_WINDOW_S or data.who is None:
        return []
    who = data.who
    # (cause, per bucket, threshold, per program, per destination)
    kinds = (("session_storm", [b.opened for b in data.sessions.buckets], STORM_SESSIONS_PER_S,
              {p.label: p.sessions for p in who.programs},
              {d.text: d.sessions for d in who.destinations}),
             ("lookup_storm", [b.lookups for b in data.dns.buckets], STORM_LOOKUPS_PER_S,
              {p.label: p.lookups for p in who.programs},
              {h.name: h.count for h in data.dns.hosts}))
    return [(cause, _values(sum(per_bucket), seconds, per_bucket, clock.bucket_s, threshold,
                            Counter(by), Counter(to)))
            for cause, per_bucket, threshold, by, to in kinds
            if sum(per_bucket) >= threshold * seconds]


def _values(total: int, seconds: float, per_bucket: list[int], bucket_s: float,
            threshold: float, by: Counter, to: Counter) -> dict[str, Any]:
    busy = sum(n / bucket_s >= threshold for n in per_bucket)
    (who, who_n), = by.most_common(1) or [(None, 0)]
    (where, where_n), = to.most_common(1) or [(None, 0)]
    return {"count": total, "seconds": round(seconds, 3), "per_second": total / seconds,
            "threshold": threshold, "busy_share": busy / len(per_bucket),
            "who": who, "who_per_second": who_n / seconds,
            "where": where, "where_per_second": where_n / seconds}
