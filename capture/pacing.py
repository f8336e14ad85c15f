"""When the window's passes run: on the wall clock, whatever a pass costs.
A pass that begins well after its interval's end is late; intervals whose
ends went by while a pass ran are folded into the next one (its bandwidth
rows' `length_s` covers them), so the window still ends on time."""

from __future__ import annotations

LATE_FRACTION = 0.1  # of an interval: a pass that begins later than this is late


def began_late(delay_ns: int, interval_ns: int) -> bool:
    """A pass `delay_ns` after its interval's end is late."""
    return delay_ns > interval_ns * LATE_FRACTION


def next_interval(start_ns: int, now_ns: int, interval_ns: int, done: int, count: int) -> int:
    """The interval to end next, after interval `done`'s pass: the one after
    it, or, if that pass overran later ends, the one running now (never past
    the window's last)."""
    running = (now_ns - start_ns) // interval_ns + 1
    return min(max(done + 1, running), count)
