"""The snapshot index's outlier flags: each snapshot's headline numbers, as
rates, against the snapshots before it, judged like the report's rates
(report/changes.py: a robust z-score over their spread, with floors), so
the bad one stands out in the list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nettrail.report.changes import K, robust_z

if TYPE_CHECKING:  # snapshots.py calls this module
    from nettrail.schedule.snapshots import Headline

HISTORY = 12        # the snapshots before one that it is judged against
MIN_HISTORY = 4     # fewer: no flags yet
# headline number: (what it is per second, the smallest sigma)
NUMBERS = {
    "received": (lambda h: h.rx_bytes, 2048.0),
    "sent": (lambda h: h.tx_bytes, 2048.0),
    "sessions": (lambda h: h.sessions, 0.5),
    "failed sessions": (lambda h: h.failed_sessions, 0.05),
    "lookups": (lambda h: h.lookups, 0.5),
    "failed lookups": (lambda h: h.failed_lookups, 0.05),
    "lost events": (lambda h: h.lost_events, 0.05),
}


def _rates(h: Headline) -> dict[str, float]:
    return {name: value(h) / h.seconds for name, (value, _) in NUMBERS.items()}


def outliers(headlines: list[Headline]) -> dict[str, list[str]]:
    """Per snapshot name (newest first, as the index lists them): its headline
    numbers far from the HISTORY finished snapshots before it."""
    readable = [h for h in reversed(headlines) if h.status == "ok" and h.seconds > 0]
    flags: dict[str, list[str]] = {}
    for n, h in enumerate(readable):
        before = [_rates(b) for b in readable[max(0, n - HISTORY):n]]
        if len(before) < MIN_HISTORY:
            continue
        now = _rates(h)
        for name, (_, floor) in NUMBERS.items():
            _, z = robust_z([b[name] for b in before], now[name], floor)
            if abs(z) > K:
                flags.setdefault(h.name, []).append(name)
    return flags
